"""`spe site check` and `spe site render`: exit codes, messages, the files written."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from spe.adapters.site_profile import SecretResolver, render_site
from spe.cli.main import main
from spe.domain.errors import InvalidRequest
from spe.domain.site_render import SecretUnavailable
from tests.site.kit import ROOT, SITES, mutated, profile

MUNGE = "m" * 40
SECRETS = {"SPE_SLURMDBD_PASSWORD": "db: 'pw' #1", "SPE_MUNGE_KEY": MUNGE}
POLICY = ROOT / "tests/fixtures/policy/two-projects.yaml"


def spe(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def write(tmp_path: Path, doc: dict[str, Any], name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["bielefeld", "berlin", "_template"])
def test_check_accepts_the_shipped_profiles(name: str) -> None:
    result = spe("site", "check", str(SITES / f"{name}.yaml"))
    assert result.exit_code == 0, result.output
    assert "example values to confirm" in result.stdout
    assert "UNCONFIRMED /bibigrid/masterInstance/type" in result.stderr


def test_check_strict_exits_1_on_unconfirmed_values() -> None:
    result = spe("site", "check", "--strict", str(SITES / "berlin.yaml"))
    assert result.exit_code == 1
    assert "INVALID /bibigrid/network: example value" in result.stderr


def test_check_lists_every_problem_with_its_pointer(tmp_path: Path) -> None:
    doc = mutated(profile(), "/bibigrid/useMasterWithPublicIp", True)
    doc = mutated(doc, "/spe/ssh_ingress_cidr", "0.0.0.0/0")
    result = spe("site", "check", str(write(tmp_path, doc)))
    assert result.exit_code == 1
    assert "INVALID /bibigrid/useMasterWithPublicIp: must be False" in result.stderr
    assert "INVALID /spe/ssh_ingress_cidr: 0.0.0.0/0 opens" in result.stderr
    assert result.stdout == ""


def test_check_exits_1_on_a_schema_error(tmp_path: Path) -> None:
    result = spe("site", "check", str(write(tmp_path, mutated(profile(), "/bibigrid/x", 1))))
    assert result.exit_code == 1
    assert "INVALID /bibigrid/x: unknown key" in result.stderr


def test_check_exits_1_on_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("site: [unclosed\n", encoding="utf-8")
    result = spe("site", "check", str(path))
    assert result.exit_code == 1
    assert "is not YAML" in result.stderr


def test_check_uses_another_base_and_the_schema_beside_it(tmp_path: Path) -> None:
    base = tmp_path / "bibigrid.yaml"
    base.write_text("{}\n", encoding="utf-8")
    result = spe("site", "check", "--base", str(base), str(SITES / "berlin.yaml"))
    assert result.exit_code == 1
    assert "a list of mappings" in result.stderr


def with_gids(tmp_path: Path) -> Path:
    return write(tmp_path, mutated(profile(), "/spe/project_gids/spe-proj-a", 30002))


def test_render_writes_the_bibigrid_file_and_the_role_vars(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = spe("site", "render", str(with_gids(tmp_path)), "--out", str(out),
                 "--policy", str(POLICY), env=SECRETS)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((out / "bibigrid.yaml").read_text())
    assert stat.S_IMODE((out / "bibigrid.yaml").stat().st_mode) == 0o600
    master = config[0]
    assert master["slurmConf"]["db_password"] == SECRETS["SPE_SLURMDBD_PASSWORD"]
    assert master["slurmConf"]["munge_key"] == MUNGE
    assert master["useMasterWithPublicIp"] is False and master["subnet"] == "spe-subnet"
    assert "site" not in master and "spe" not in master  # BiBiGrid keys only
    roles = yaml.safe_load((out / "spe_cluster.yaml").read_text())
    assert roles["spe_projects"] == [{"id": "proj-a", "posix_group": "spe-proj-a",
                                      "gid": 30002, "slurm_account": "proj_a"}]
    assert roles["spe_shares"]["work"]["project_mode"] == "2770"


def test_render_names_each_secret_it_cannot_resolve(tmp_path: Path) -> None:
    result = spe("site", "render", str(SITES / "bielefeld.yaml"), "--out",
                 str(tmp_path / "out"), env={"SPE_MUNGE_KEY": "short"})
    assert result.exit_code == 1
    assert ("INVALID /bibigrid/slurmConf/db_password: environment variable "
            "SPE_SLURMDBD_PASSWORD is not set") in result.stderr
    assert "INVALID /bibigrid/slurmConf/munge_key" in result.stderr
    assert "at least 32 characters" in result.stderr
    assert not (tmp_path / "out").exists()


def test_render_refuses_an_invalid_profile(tmp_path: Path) -> None:
    doc = mutated(profile(), "/bibigrid/ide", True)
    result = spe("site", "render", str(write(tmp_path, doc)), "--out", str(tmp_path / "o"),
                 env=SECRETS)
    assert result.exit_code == 1
    assert "INVALID /bibigrid/ide" in result.stderr


def test_render_needs_a_gid_for_each_policy_project(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as err:
        render_site(SITES / "bielefeld.yaml", tmp_path, env=SECRETS, policy=POLICY)
    assert err.value.errors == [("/spe/project_gids/spe-proj-a",
                                 "project 'proj-a': its posix_group needs a gid")]


def test_secrets_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "munge.key"
    secret.write_text(MUNGE + "\n", encoding="utf-8")
    resolve = SecretResolver({})
    assert resolve(f"${{file:{secret}}}") == MUNGE
    with pytest.raises(SecretUnavailable, match="cannot read"):
        resolve(f"${{file:{tmp_path}/absent}}")


def test_render_rewrites_an_existing_file_with_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "bibigrid.yaml"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    render_site(SITES / "berlin.yaml", tmp_path, env=SECRETS)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert yaml.safe_load(target.read_text())[0]["network"] == "spe-network"
