"""A SLURM run's end noticed at once: the job script's exit-status file is seen within a
quarter of a second (``spe.adapters.executors.exit_files``), not at the reconciler's next
tick, here 60 s away (issue 15, goal 5)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spe.domain.jobdir import JobDir
from tests.helpers import WES, Server
from tests.slurm.conftest import slurm_server
from tests.slurm_cluster import SlurmCluster


@pytest.fixture(scope="module")
def slow_tick_server(cluster: SlurmCluster, slurm_home: Path,
                     catalog_dir: Path) -> Iterator[Server]:
    server = slurm_server(slurm_home / "end-notice", catalog_dir, cluster,
                          SPE_RECONCILE_SECONDS="60",
                          SPE_SLURM_RULE_JOBS="in_head_job").start()
    yield server
    server.stop()


def test_the_end_of_a_slurm_job_is_seen_long_before_the_next_tick(
        slow_tick_server: Server) -> None:
    api = slow_tick_server.api("alice")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    exit_file = JobDir(slow_tick_server.home / "runs" / run_id).exit_status
    deadline = time.monotonic() + 50  # the first tick comes 60 s after the start
    state = ""
    while time.monotonic() < deadline:
        state = api.get(f"{WES}/runs/{run_id}/status").json()["state"]
        if state in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"):
            break
        time.sleep(0.05)
    seen = time.time()
    assert state == "COMPLETE", slow_tick_server.log_tail()
    assert seen - exit_file.stat().st_mtime < 5, "the end waited for the reconcile tick"
