"""The spe_cluster role's systemd units (spe-api.service, spe-worker@.service) and its
settings file, rendered by Ansible from the role's defaults: `systemd-analyze verify`
accepts them, and they carry the hardening the master needs. The worker's sudo (sbatch as
the researcher) is checked with the worker unit's own privilege settings via setpriv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from spe.config import Settings
from tests.site.kit import ROLE
from tests.site.test_role import PLAYBOOK, VISUDO, ansible, needs_ansible

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
VENV = Path(sys.executable).parent.parent  # has bin/spe: verify checks ExecStart exists
UNITS = ("spe-api.service", "spe-worker@.service")
# systemd.exec(5): each of these implies NoNewPrivileges=yes for a service with User=,
# which stops sudo (the worker's sbatch/scancel as the researcher).
IMPLY_NO_NEW_PRIVILEGES = frozenset({
    "PrivateDevices", "ProtectHostname", "ProtectClock", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectKernelLogs", "RestrictAddressFamilies",
    "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute", "RestrictRealtime",
    "RestrictSUIDSGID", "SystemCallFilter", "SystemCallArchitectures", "SystemCallLog",
    "DynamicUser"})
needs_systemd_analyze = pytest.mark.skipif(not Path(SYSTEMD_ANALYZE).exists(),
                                           reason="systemd-analyze absent (Debian: systemd)")


def render(tmp_path: Path, **extra: Any) -> Path:
    """The role's templates rendered by Ansible with its defaults (+ ``extra``)."""
    out = tmp_path / "out"
    out.mkdir()
    names = [*UNITS, "spe.env", "secrets.env"]
    play = [{"hosts": "master", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults/main.yml")],
             "tasks": [{"name": "templates of the role", "ansible.builtin.template": {
                 "src": str(ROLE / "templates") + "/{{ item }}.j2",
                 "dest": f"{out}/{{{{ item }}}}", "mode": "0600"},
                 "loop": names}]}]
    proc = ansible(tmp_path, play, "-e", json.dumps({"spe_service_venv": str(VENV), **extra}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def researcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The role's defaults: jobs run as the researcher (sbatch through sudo)."""
    if not PLAYBOOK.exists():
        pytest.skip("ansible-core not installed (the dev extra installs it)")
    return render(tmp_path_factory.mktemp("researcher"))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Jobs run as the service: no sudo."""
    if not PLAYBOOK.exists():
        pytest.skip("ansible-core not installed (the dev extra installs it)")
    return render(tmp_path_factory.mktemp("service"), spe_slurm_submit_as="service")


def directives(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, every value of a repeated key in order."""
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *map(str, units)],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=units[0].parent)


@needs_systemd_analyze
@pytest.mark.parametrize("variant", ["researcher", "service"])
def test_systemd_analyze_verify_accepts_the_units(request: pytest.FixtureRequest,
                                                  variant: str) -> None:
    out: Path = request.getfixturevalue(variant)
    proc = verify(*(out / unit for unit in UNITS))
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


@needs_systemd_analyze
def test_verify_would_catch_a_broken_unit(researcher: Path, tmp_path: Path) -> None:
    unit = tmp_path / "spe-api.service"
    text = (researcher / unit.name).read_text()
    unit.write_text(text.replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    assert "Failed to parse protect system value" in verify(unit).stderr
    unit.write_text(unit.read_text().replace(str(VENV), "/nonexistent"))
    assert "is not executable" in verify(unit).stderr


def test_the_api_unit_is_hardened(researcher: Path) -> None:
    api = directives(researcher / "spe-api.service")
    expected = {"User": ["spe"], "Group": ["spe"], "NoNewPrivileges": ["yes"],
                "ProtectSystem": ["strict"], "ProtectHome": ["yes"], "PrivateTmp": ["yes"],
                "CapabilityBoundingSet": [""], "AmbientCapabilities": [""],
                "UMask": ["0077"], "RestrictSUIDSGID": ["yes"],
                "ReadWritePaths": ["/var/lib/spe /vol/spe/work /vol/spe/quarantine"],
                "EnvironmentFile": ["/etc/spe/spe.env", "/etc/spe/secrets.env"],
                "ExecStartPre": [f"{VENV}/bin/spe db upgrade"],
                "ExecStart": [f"{VENV}/bin/spe serve"]}
    assert {k: api.get(k) for k in expected} == expected
    assert IMPLY_NO_NEW_PRIVILEGES - {"MemoryDenyWriteExecute", "SystemCallFilter",
                                      "SystemCallLog", "DynamicUser"} <= set(api)


def test_the_worker_keeps_only_what_sudo_needs_when_jobs_run_as_researchers(
        researcher: Path) -> None:
    out = researcher
    worker = directives(out / "spe-worker@.service")
    assert worker["ExecStart"] == [f"{VENV}/bin/spe worker --concurrency 4"]
    assert worker["NoNewPrivileges"] == ["no"]
    assert worker["CapabilityBoundingSet"] == ["CAP_SETUID CAP_SETGID CAP_AUDIT_WRITE"]
    assert IMPLY_NO_NEW_PRIVILEGES.isdisjoint(worker), IMPLY_NO_NEW_PRIVILEGES & set(worker)
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths", "UMask",
                "User", "EnvironmentFile"):
        assert worker[key] == directives(out / "spe-api.service")[key]


def test_the_worker_is_fully_hardened_when_jobs_run_as_the_service(service: Path) -> None:
    worker = directives(service / "spe-worker@.service")
    assert worker["NoNewPrivileges"] == ["yes"]
    assert worker["CapabilityBoundingSet"] == [""]


@needs_ansible
def test_settings_and_secrets_are_separate_files(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = render(tmp_path, spe_settings={"public_url": "https://spe.example.org",
                                         "trusted_proxies": ["10.0.0.5"], "workers": 3},
                 spe_secrets={"database_url": "postgresql+psycopg://spe:pw@db/spe"})
    settings = (out / "spe.env").read_text()
    assert 'SPE_PUBLIC_URL="https://spe.example.org"' in settings
    assert 'SPE_TRUSTED_PROXIES="[\\"10.0.0.5\\"]"' in settings  # JSON, quoted for systemd
    # systemd unquotes the value (JSON string escapes are systemd's); the service parses it
    value = json.loads(directives(out / "spe.env")["SPE_TRUSTED_PROXIES"][0])
    monkeypatch.setenv("SPE_TRUSTED_PROXIES", value)
    assert Settings().trusted_proxies == ("10.0.0.5",)
    assert 'SPE_WORKERS="3"' in settings
    assert "SPE_EXECUTOR=slurm" in settings and "SPE_DISPATCHER=celery" in settings
    assert "pw@" not in settings
    assert 'SPE_DATABASE_URL="postgresql+psycopg://spe:pw@db/spe"' in (
        out / "secrets.env").read_text()
    tasks = (ROLE / "tasks/service.yml").read_text()
    assert "dest: \"{{ spe_config_dir }}/secrets.env\"\n    owner: root\n    group: root\n" \
        "    mode: \"0600\"\n  no_log: true" in tasks


@needs_ansible
@pytest.mark.parametrize(("extra", "message"), [
    ({}, "needs spe_wheel_src"),
    ({"spe_wheel_src": "/tmp/spe-0.1.0-py3-none-any.whl", "spe_policy_src": "/p.yaml",
      "spe_settings": {"database_url": "x"}}, "belong in spe_secrets"),
])
def test_the_role_refuses_a_service_without_its_parts(tmp_path: Path, extra: dict[str, Any],
                                                      message: str) -> None:
    play = [{"hosts": "master", "gather_facts": False,
             "vars": {"spe_install_service": True, **extra},
             "tasks": [{"name": "assertions of the role",
                        "ansible.builtin.include_role": {"name": "spe_cluster",
                                                         "tasks_from": "assert"}}]}]
    proc = ansible(tmp_path, play)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout


def privileges(unit: dict[str, list[str]]) -> list[str]:
    """setpriv options giving a process the unit's NoNewPrivileges and bounding set."""
    caps = unit["CapabilityBoundingSet"][0].split()
    bounding = ",".join(["-all", *(f"+{c.removeprefix('CAP_').lower()}" for c in caps)])
    nnp = ["--no-new-privs"] if unit["NoNewPrivileges"] == ["yes"] else []
    return [*nnp, f"--bounding-set={bounding}"]


@pytest.mark.external  # installs a sudo rule in /etc/sudoers.d for the test's length
@pytest.mark.skipif(os.geteuid() != 0 or not Path(SETPRIV).exists()
                    or shutil.which("sudo") is None or not Path(VISUDO).exists(),
                    reason="needs root, sudo, visudo and setpriv (util-linux)")
def test_sudo_works_under_the_worker_unit_and_not_under_the_api_unit(researcher: Path,
                                                                    tmp_path: Path) -> None:
    out = researcher
    rule = Path(f"/etc/sudoers.d/spe-test-{uuid.uuid4().hex[:8]}")
    text = "nobody ALL=(daemon) NOPASSWD: /usr/bin/id\n"
    staged = tmp_path / "rule"
    staged.write_text(text)
    assert subprocess.run([VISUDO, "-cf", str(staged)], check=False).returncode == 0
    rule.write_text(text)
    rule.chmod(0o440)
    try:
        def sudo_as_researcher(unit: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                 *privileges(directives(out / unit)), "sudo", "-n", "-u", "daemon",
                 "/usr/bin/id", "-un"], capture_output=True, text=True, timeout=30,
                check=False)
        worker = sudo_as_researcher("spe-worker@.service")
        assert worker.returncode == 0 and worker.stdout.strip() == "daemon", worker.stderr
        api = sudo_as_researcher("spe-api.service")
        assert api.returncode != 0 and "no new privileges" in api.stderr, api.stderr
    finally:
        rule.unlink()

