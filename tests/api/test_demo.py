"""scripts/demo.sh, end to end, for every Snakemake workflow of the shipped catalog (issue
14): it asks the run which outputs to request, shows the data the run read and the
automatic checks, and leaves the released files beside their Five Safes RO-Crate. A busy
port is an error before any server starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, free_port

DEMO = ROOT / "scripts/demo.sh"


def _smk_workflows() -> list[str]:
    ids = set()
    for manifest in (ROOT / "workflows").glob("*/*/manifest.yaml"):
        entry = yaml.safe_load(manifest.read_text())
        if entry["workflow_type"] == "SMK":
            ids.add(entry["id"])
    return sorted(ids)


def _run_demo(home: Path, port: int, *args: str, timeout: float = 900
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPE_HOME": str(home), "SPE_PORT": str(port)}
    env.pop("SPE_TOKEN", None)
    return subprocess.run(["/bin/bash", str(DEMO), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("workflow", _smk_workflows())
def test_the_demo_releases_the_outputs_of_each_snakemake_workflow(
        tmp_path: Path, workflow: str) -> None:
    home = tmp_path / "home"
    done = _run_demo(home, free_port(), workflow)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    assert "== What the run read:" in out and f"parameters of {workflow}" in out
    assert "== The automatic checks of the request:" in out
    assert ": IN_REVIEW" in out and "file_type" in out  # the findings, listed
    released = home / "released"
    (request_dir,) = released.iterdir()
    crate = json.loads((request_dir / "ro-crate-metadata.json").read_text())
    files = {e["name"] for e in crate["@graph"] if e.get("@type") == "File"}
    on_disk = {str(p.relative_to(request_dir)) for p in request_dir.rglob("*")
               if p.is_file() and p.name != "ro-crate-metadata.json"}
    assert files == on_disk and files  # every requested output, beside its crate
    assert not any(f.startswith("_logs/") for f in files)


def test_the_demo_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run_demo(tmp_path / "home", port, timeout=300)
    assert done.returncode != 0
    assert f"port {port} is busy" in done.stderr and "SPE_PORT" in done.stderr
    assert not (tmp_path / "home" / "server.log").exists()  # no server was started
