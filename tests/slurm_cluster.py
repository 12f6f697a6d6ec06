"""The real single-node SLURM cluster of the tests, started by the project's own scripts.

``slurm_or_skip()`` runs ``scripts/cluster-side.sh`` (accounts, groups, the engines venv)
and ``scripts/slurm.sh start`` (munged, slurmctld, slurmd; idempotent, waits on readiness);
``stop_if_started()`` stops it at the end of the session if the session started it.
Without Debian's slurm-wlm it skips, unless ``SPE_REQUIRE_SLURM=1`` (set by
scripts/test.sh), where it fails instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tiers import starting

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("SPE_TEST_SLURM_DIR", "/var/tmp/spe-slurm"))
ENGINES = Path(os.environ.get("SPE_TEST_ENGINES", "/opt/spe/engines"))


@dataclass(frozen=True)
class SlurmCluster:
    state_dir: Path
    engines: Path
    node: str

    def script(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([str(ROOT / "scripts/slurm.sh"), *args, str(self.state_dir)],
                       check=True, timeout=timeout, capture_output=True)

    def scontrol(self, *args: str) -> str:
        return subprocess.run(["/usr/bin/scontrol", *args], check=True, timeout=30,
                              capture_output=True, text=True).stdout


def slurm_or_skip() -> SlurmCluster:
    starting("the SLURM cluster")
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "sudo")
               if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing or os.geteuid() != 0:
        why = f"SLURM tests need root and {missing or 'root'} (scripts/install-test-deps.sh)"
        if os.environ.get("SPE_REQUIRE_SLURM") == "1":
            pytest.fail(why)
        pytest.skip(why)
    subprocess.run([str(ROOT / "scripts/cluster-side.sh"), str(ENGINES)], check=True,
                   timeout=900, capture_output=True)
    cluster = SlurmCluster(STATE_DIR, ENGINES, os.uname().nodename.split(".")[0])
    if not _started and not _running(cluster):
        _started.append(cluster)  # this session brings it up, so it also stops it
    cluster.script("start")
    return cluster


_started: list[SlurmCluster] = []


def _running(cluster: SlurmCluster) -> bool:
    return subprocess.run([str(ROOT / "scripts/slurm.sh"), "status", str(cluster.state_dir)],
                          check=False, timeout=60, capture_output=True).returncode == 0


def stop_if_started() -> None:
    """At the end of the session: stop the cluster if this session started it (a cluster a
    developer started by hand keeps running)."""
    while _started:
        _started.pop().script("stop")
