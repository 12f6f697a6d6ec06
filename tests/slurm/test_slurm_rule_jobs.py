"""SPE_SLURM_RULE_JOBS=in_head_job on the real cluster: the rules run inside the head job,
still as the researcher under the project's SLURM account, and the engine submits no SLURM
job of its own (issue 15, goal 6: no per-rule queueing nor status-check back-off)."""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import WES, Server
from tests.slurm.conftest import slurm_server
from tests.slurm.test_slurm_runs import EXAMPLE, head_job
from tests.slurm_cluster import SlurmCluster


@pytest.fixture(scope="module")
def in_head_job_server(cluster: SlurmCluster, slurm_home: Path,
                       catalog_dir: Path) -> Iterator[Server]:
    server = slurm_server(slurm_home / "in-head-job", catalog_dir, cluster,
                          SPE_SLURM_RULE_JOBS="in_head_job").start()
    yield server
    server.stop()


def test_rules_run_inside_the_head_job_as_the_researcher(in_head_job_server: Server,
                                                         cluster: SlurmCluster) -> None:
    api = in_head_job_server.api("alice")
    run_id = api.run_id(api.submit("tsv-summary@1.1.0", EXAMPLE))
    assert api.wait(run_id, timeout=240) == "COMPLETE", in_head_job_server.log_tail()

    head = head_job(in_head_job_server, run_id)
    job = cluster.scontrol("show", "job", "-o", head)
    assert "UserId=spe-alice(" in job and "Account=demo" in job
    produced = in_head_job_server.home / "runs" / run_id / "work" / "results" / "summary.csv"
    assert pwd.getpwuid(produced.stat().st_uid).pw_name == "spe-alice"

    tasks = api.get(f"{WES}/runs/{run_id}/tasks").json()["task_logs"]
    assert len(tasks) >= 3, tasks  # every rule ran and was reported
    assert all(t.get("exit_code") == 0 for t in tasks), tasks
    assert not [line for t in tasks for line in (t.get("system_logs") or [])
                if line.startswith("SLURM job ")], tasks  # no rule went to the queue
    # the head job is the only SLURM job the run ever had (the controller keeps ended jobs
    # for MinJobAge=300 s): every job in this run's directory is the head job
    out = cluster.scontrol("show", "job", "-o")
    workdir = str(in_head_job_server.home / "runs" / run_id)
    mine = [line.split()[0] for line in out.splitlines() if f"WorkDir={workdir}" in line]
    assert mine == [f"JobId={head}"], mine
