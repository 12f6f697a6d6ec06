"""The spe_cluster Ansible role and the kit's YAML: lint, structure, `ansible-playbook
--syntax-check`, its assertions and derived values run locally, the sudo rule through
visudo."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.site.kit import KIT, ROLE, load

BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"
VISUDO = shutil.which("visudo") or "/usr/sbin/visudo"
needs_ansible = pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core not installed "
                                   "(the dev extra installs it)")
TASK_FILES = sorted((ROLE / "tasks").glob("*.yml"))
PROJECT = {"id": "demo", "posix_group": "spe-demo", "gid": 30001, "slurm_account": "demo"}


def yaml_files() -> list[Path]:
    return sorted(p for p in KIT.rglob("*") if p.suffix in {".yml", ".yaml"})


def test_yamllint_passes_on_the_kit() -> None:
    pytest.importorskip("yamllint")
    proc = subprocess.run([sys.executable, "-m", "yamllint", "-s", "-c",
                           str(KIT / ".yamllint"), str(KIT)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(KIT)))
def test_every_yaml_file_loads(path: Path) -> None:
    assert load(path) is not None


def role_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, task) for p in [*TASK_FILES, ROLE / "handlers/main.yml"]
            for task in load(p)]


def test_the_role_has_the_usual_layout() -> None:
    for part in ("tasks/main.yml", "defaults/main.yml", "handlers/main.yml", "meta/main.yml",
                 "templates/spe-sudoers.j2", "README.md"):
        assert (ROLE / part).is_file(), part
    assert load(ROLE / "meta/main.yml")["dependencies"] == []


@pytest.mark.parametrize(("where", "task"), role_tasks(),
                         ids=lambda v: v if isinstance(v, str) else v.get("name", "?"))
def test_every_task_is_named_and_uses_builtin_modules(where: str, task: dict[str, Any]) -> None:
    assert task.get("name"), where
    modules = [k for k in task if k.startswith("ansible.")]
    assert len(modules) == 1 and modules[0].startswith("ansible.builtin."), (where, task)


def modes(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [str(v) for k, v in node.items() if k in {"mode", "project_mode"}] + [
            m for v in node.values() for m in modes(v)]
    if isinstance(node, list):
        return [m for v in node for m in modes(v)]
    return []


def test_no_mode_in_the_role_is_world_writable() -> None:
    found = [m for p in ROLE.rglob("*.yml") for m in modes(load(p))]
    assert "0440" in found and "2770" in found
    octal = [m for m in found if m.isdigit()]
    assert all(int(m, 8) & 0o002 == 0 for m in octal), octal


def test_the_sudo_rule_names_researchers_not_root_and_no_other_command() -> None:
    text = (ROLE / "templates/spe-sudoers.j2").read_text(encoding="utf-8")
    rule = [line for line in text.splitlines() if "NOPASSWD" in line]
    assert rule == ["{{ spe_service_user }} ALL=(%{{ spe_researcher_group }},!root) "
                    "NOPASSWD: SPE_SLURM"]
    assert load(ROLE / "defaults/main.yml")["spe_sudo_commands"] == ["sbatch", "scancel"]


def ansible(tmp_path: Path, play: list[dict[str, Any]], *args: str
            ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    (tmp_path / "hosts").write_text(
        "[master]\nlocalhost ansible_connection=local "
        f"ansible_python_interpreter={sys.executable}\n[workers]\n", encoding="utf-8")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLE.parent),
           "ANSIBLE_HOME": str(tmp_path / "home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    return subprocess.run([str(PLAYBOOK), "-i", str(tmp_path / "hosts"), *args,
                           str(tmp_path / "play.yml")], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


@needs_ansible
def test_syntax_check_of_a_playbook_using_the_role(tmp_path: Path) -> None:
    play = [{"hosts": group, "become": True, "roles": ["spe_cluster"]}
            for group in ("master", "workers")]
    proc = ansible(tmp_path, play, "--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def asserting(projects: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    return [{"hosts": "master", "gather_facts": False,
             "vars": {"spe_projects": projects, **extra},
             "tasks": [{"name": "assertions of the role",
                        "ansible.builtin.include_role": {"name": "spe_cluster",
                                                         "tasks_from": "assert"}}]}]


@needs_ansible
def test_the_role_accepts_its_defaults_and_a_project(tmp_path: Path) -> None:
    proc = ansible(tmp_path, asserting([PROJECT]))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_ansible
@pytest.mark.parametrize(("projects", "extra", "message"), [
    ([{**PROJECT, "gid": "x"}], {}, "needs posix_group, an integer gid"),
    ([PROJECT, {**PROJECT, "id": "b", "posix_group": "spe-b"}], {}, "share a gid"),
    ([PROJECT], {"spe_shares": {"data": {"mode": "0755", "readonly": True},
                                "work": {"mode": "0777", "project_mode": "2770"},
                                "quarantine": {"mode": "2750"}}}, "nothing world-writable"),
    ([PROJECT], {"spe_sudo_commands": ["sbatch", "bash"]}, "sbatch, scancel"),
    ([PROJECT], {"spe_install_nextflow": True}, "spe_nextflow_checksum"),
])
def test_the_role_refuses(tmp_path: Path, projects: list[dict[str, Any]],
                          extra: dict[str, Any], message: str) -> None:
    proc = ansible(tmp_path, asserting(projects, **extra))
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout


@needs_ansible
def test_the_data_export_becomes_read_only(tmp_path: Path) -> None:
    exports = ("//vol/spool 10.0.0.0/24(rw,nohide,insecure,no_subtree_check,async)\n"
               "//vol/spe/data 10.0.0.0/24(rw,nohide,insecure,no_subtree_check,async) "
               "10.1.0.0/24(rw,no_root_squash,async)\n"
               "//vol/spe/data-old 10.0.0.0/24(rw,async)\n")
    want = ("//vol/spe/data 10.0.0.0/24(ro,nohide,insecure,no_subtree_check,async) "
            "10.1.0.0/24(ro,root_squash,async)")
    play = [{"hosts": "master", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
             "vars": {"spe_exports": {"content": base64.b64encode(exports.encode()).decode()}},
             "tasks": [{"name": "derived", "ansible.builtin.assert": {"that": [
                 "spe_data_export_lines | length == 1",
                 f"spe_data_export_line == {want!r}"]}}]}]
    proc = ansible(tmp_path, play)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_ansible
@pytest.mark.skipif(os.geteuid() != 0 or not Path(VISUDO).exists(),
                    reason="installs a root-owned file through visudo")
def test_the_sudo_rule_passes_visudo(tmp_path: Path) -> None:
    target = tmp_path / "spe.sudoers"
    play = [{"hosts": "master", "gather_facts": False,
             "vars": {"spe_sudoers_file": str(target), "spe_visudo": VISUDO},
             "tasks": [{"name": "the role's sudoers task",
                        "ansible.builtin.include_role": {"name": "spe_cluster",
                                                         "tasks_from": "sudoers"}}]}]
    proc = ansible(tmp_path, play)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = target.read_text(encoding="utf-8")
    assert "Cmnd_Alias SPE_SLURM = /usr/bin/sbatch, /usr/bin/scancel" in text
    assert "spe ALL=(%spe-researchers,!root) NOPASSWD: SPE_SLURM" in text
    assert oct(target.stat().st_mode & 0o777) == "0o440"
    broken = tmp_path / "broken"
    broken.write_text("spe ALL=(%spe-researchers,!root NOPASSWD: SPE_SLURM\n", encoding="utf-8")
    assert subprocess.run([VISUDO, "-cf", str(broken)], capture_output=True,
                          check=False).returncode != 0
