"""`spe task` against a real server, as a researcher drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import Server
from tests.tes.conftest import as_user


def spe(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPE_URL": server.url, "SPE_TOKEN": as_user(server, "alice").token,
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "spe.cli.main", "task", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_submit_wait_get_list_and_cancel(tes_server: Server, tmp_path: Path) -> None:
    done = spe(tes_server, "submit", "--image", "alpine", "--name", "cli-task",
               "-i", "dataset://cohort-a/counts.tsv=/data/counts.tsv",
               "-o", "quarantine:///n.txt=/data/n.txt", "--wait", "--",
               "sh", "-c", "wc -l < /data/counts.tsv > /data/n.txt")
    assert done.returncode == 0, done.stderr
    assert "COMPLETE" in done.stdout and "quarantine:///n.txt" in done.stdout
    listed = json.loads(spe(tes_server, "list", "--name-prefix", "cli-", "--json").stdout)
    task_id = listed["tasks"][0]["id"]
    full = json.loads(spe(tes_server, "get", task_id, "--json").stdout)
    assert full["state"] == "COMPLETE" and full["logs"][0]["outputs"][0]["size_bytes"] == "2"
    body = tmp_path / "task.json"
    body.write_text(json.dumps({"executors": [{"image": "alpine",
                                               "command": ["sleep", "300"]}]}))
    created = spe(tes_server, "submit", str(body), "--json")
    assert created.returncode == 0, created.stderr
    sleeper = json.loads(created.stdout)["id"]
    assert spe(tes_server, "cancel", sleeper).returncode == 0
    deadline = time.monotonic() + 60
    while json.loads(spe(tes_server, "get", sleeper, "--json").stdout)["state"] != "CANCELED":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    failing = spe(tes_server, "submit", "--image", "not-reviewed", "--", "true")
    assert failing.returncode == 1 and "image catalog" in failing.stderr
    assert "Traceback" not in failing.stderr
