"""Issue 11, finding 5: the service's state was world-readable (SPE_HOME, runs, quarantine
and outbox 0755, spe.db and released files 0644), so another local user read raw rows
and the database. The service now writes with a umask of 077, and `spe serve` refuses to
start on a SPE_HOME or a database file that others may read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, Api, Server, free_port

GROUPS = {"alice": ("spe:proj-a",),
          "rita": ("spe:proj-a", "spe:proj-a:role=reviewer"),
          "rex": ("spe:proj-a", "spe:proj-a:role=reviewer")}
RR = "/spe/v1/release-requests"


@pytest.fixture
def srv(tmp_path: Path, catalog_dir: Path) -> Iterator[Server]:
    policy = tmp_path / "policy.yaml"
    policy.write_text((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    server = Server(home=tmp_path / "home", catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(policy)}).start()
    yield server
    server.stop()


def _as(srv: Server, name: str) -> Api:
    return Api(srv.url, srv.token(name, groups=GROUPS[name]))


def _release(srv: Server, run_id: str) -> str:
    req = _as(srv, "alice").post(RR, json={"run_id": run_id, "files": ["results/done.txt"],
                                           "justification": "Aggregate only."}).json()
    for reviewer in ("rita", "rex"):
        resp = _as(srv, reviewer).post(f"{RR}/{req['id']}/votes", json={
            "path": "results/done.txt", "decision": "approve", "reason": "Aggregate only."})
        assert resp.status_code == 200, resp.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _as(srv, "alice").get(f"{RR}/{req['id']}").json()["state"] == "RELEASED":
            return str(req["id"])
        time.sleep(0.1)
    raise AssertionError("the request was not released")


def _open_to_others(home: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            path = Path(root, name)
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o007:
                found.append(f"{path.relative_to(home)} {stat.filemode(mode)}")
    return found


def test_state_written_by_the_service_is_private(srv: Server) -> None:
    alice = _as(srv, "alice")
    run_id = alice.run_id(alice.submit("sleepy", {"seconds": 0}))
    assert alice.wait(run_id) == "COMPLETE"
    request_id = _release(srv, run_id)
    assert (srv.home / "runs" / run_id / "workflow").is_dir()
    assert (srv.home / "quarantine/proj-a" / run_id / "results/done.txt").is_file()
    assert (srv.home / "outbox/proj-a" / request_id / "results/done.txt").is_file()
    assert (srv.home / "spe.db").is_file()
    assert _open_to_others(srv.home) == []


def _serve(home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPE_HOME": str(home), "SPE_CATALOG_DIR": str(ROOT / "workflows")}
    return subprocess.run([sys.executable, "-m", "spe.cli.main", "serve", "--port",
                           str(free_port())], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_serve_refuses_a_world_readable_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    result = _serve(home)
    assert result.returncode != 0
    assert str(home) in result.stderr and "readable by other users" in result.stderr, \
        result.stderr
    assert not (home / "spe.db").exists()  # refused before anything was written


def test_serve_refuses_a_world_readable_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "spe.db").touch()
    (home / "spe.db").chmod(0o644)
    result = _serve(home)
    assert result.returncode != 0
    assert str(home / "spe.db") in result.stderr, result.stderr
