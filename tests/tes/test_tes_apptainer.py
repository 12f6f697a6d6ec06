"""TES under the Apptainer command builder (the de.NBI clusters' runtime): Apptainer is not
installable here, so a strict stand-in on PATH (tests/tes/apptainer_standin.py) takes the
builder's command line, records it, and runs the same container with Charliecloud."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Server
from tests.tes.conftest import TES, as_user, import_image, two_projects


@pytest.fixture(scope="module")
def apptainer_server(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
                     busybox: Path) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("apptainer")
    home = base / "home"
    home.mkdir(mode=0o700)
    bindir = base / "bin"
    bindir.mkdir()
    standin = bindir / "apptainer"
    shutil.copy(Path(__file__).with_name("apptainer_standin.py"), standin)
    standin.chmod(0o755)
    import_image(home, busybox, "busybox", "1.36", "alpine")
    server = Server(home=home, catalog=catalog_dir, env_extra={
        "SPE_POLICY_FILE": str(two_projects(base / "policy.yaml", base / "data")),
        "SPE_CONTAINER_RUNTIME": "apptainer", "SPE_APPTAINER_BIN": str(standin)}).start()
    yield server
    server.stop()


def test_a_task_runs_under_the_apptainer_command_line(apptainer_server: Server) -> None:
    alice = as_user(apptainer_server, "alice")
    resp = alice.post(f"{TES}/tasks", json={
        "inputs": [{"path": "/data/in.txt", "content": "abc\n"}],
        "outputs": [{"path": "/outputs/out.txt", "url": "quarantine:///out.txt"}],
        "executors": [{"image": "alpine", "workdir": "/data", "env": {"X": "a,b $HOME"},
                       "command": ["sh", "-c", "cat in.txt > /outputs/out.txt; "
                                   "echo \"$X\" >> /outputs/out.txt"]}]})
    assert resp.status_code == 200, resp.text
    task_id = resp.json()["id"]
    deadline = time.monotonic() + 60
    while (state := alice.get(f"{TES}/tasks/{task_id}").json()["state"]) not in (
            "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    job = apptainer_server.home / "runs" / task_id
    assert state == "COMPLETE", (job / "logs" / "executor-0.stderr").read_text()
    out = apptainer_server.home / "quarantine/proj-a" / task_id / "out.txt"
    assert out.read_text() == "abc\na,b $HOME\n"
    call = json.loads((job / "apptainer-calls.jsonl").read_text().splitlines()[0])
    argv = call["argv"]
    assert argv[:6] == ["exec", "--containall", "--cleanenv", "--no-home", "--no-init",
                        "--no-umask"]
    assert f"{job}/work/data:/data:rw" in argv and f"{job}/work/tmp:/tmp:rw" in argv
    assert call["env"]["X"] == "a,b $HOME" and call["env"]["HOME"] == "/tmp"
