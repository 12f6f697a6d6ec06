"""Workflows on a real SLURM cluster, submitted over WES: the head job and every rule job
run as the researcher's POSIX account, in the project's group-owned run directory; task
logs name the real SLURM job ids; cancel stops the head job and what it spawned."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from pathlib import Path

from tests.helpers import WES, Server
from tests.slurm_cluster import SlurmCluster

EXAMPLE = {"input": "dataset://demo-cohorts/cohort_a.tsv", "group_column": "site",
           "value_column": "bmi"}


def head_job(server: Server, run_id: str) -> str:
    return (server.home / "runs" / run_id / "slurm_job_id").read_text().strip()


def jobs_in(workdir: Path) -> list[str]:
    out = subprocess.run(["/usr/bin/squeue", "-h", "-a", "-o", "%i|%Z"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return [line.split("|")[0] for line in out.splitlines()
            if line.split("|")[1].startswith(str(workdir))]


def test_a_workflow_runs_on_slurm_as_the_researcher(slurm_api_server: Server,
                                                    cluster: SlurmCluster) -> None:
    api = slurm_api_server.api("alice")
    run_id = api.run_id(api.submit("tsv-summary@1.1.0", EXAMPLE))
    assert api.wait(run_id, timeout=240) == "COMPLETE", slurm_api_server.log_tail()
    body = api.get(f"{WES}/runs/{run_id}").json()
    assert "results/summary.csv" in body["outputs"]

    workdir = slurm_api_server.home / "runs" / run_id
    head = head_job(slurm_api_server, run_id)
    assert f"submitted as SLURM job {head}" in body["run_log"]["system_logs"]
    job = cluster.scontrol("show", "job", "-o", head)
    assert "UserId=spe-alice(" in job
    assert "Account=demo" in job
    produced = workdir / "work" / "results" / "summary.csv"
    assert pwd.getpwuid(produced.stat().st_uid).pw_name == "spe-alice"
    assert grp.getgrgid(produced.stat().st_gid).gr_name == "spe-demo"
    mode = workdir.stat().st_mode
    assert grp.getgrgid(workdir.stat().st_gid).gr_name == "spe-demo"
    assert stat.S_IMODE(mode) == 0o3770  # setgid + sticky, nothing for others
    assert stat.S_IMODE((workdir / "workflow").stat().st_mode) == 0o2750

    tasks = api.get(f"{WES}/runs/{run_id}/tasks").json()["task_logs"]
    slurm_ids = [line for t in tasks for line in (t.get("system_logs") or [])
                 if line.startswith("SLURM job ")]
    assert slurm_ids, tasks  # rule jobs went through snakemake-executor-plugin-slurm
    for line in slurm_ids:
        job_id = line.removeprefix("SLURM job ")
        record = cluster.scontrol("show", "job", "-o", job_id)
        assert "UserId=spe-alice(" in record and f"JobId={job_id} " in record


def test_a_researcher_without_a_posix_account_is_refused_at_submission(
        slurm_api_server: Server) -> None:
    api = slurm_api_server.api("carol")  # a member of demo, with no POSIX account
    resp = api.submit("sleepy", {"seconds": 1})
    assert resp.status_code == 403, resp.text
    assert "no POSIX account 'carol'" in resp.json()["msg"]


def test_an_account_outside_the_project_group_is_refused_at_submission(
        slurm_api_server: Server) -> None:
    api = slurm_api_server.api("bob")  # spe-bob is in spe-other, the token says demo
    resp = api.submit("sleepy", {"seconds": 1})
    assert resp.status_code == 403, resp.text
    assert "not a member of the project's group 'spe-demo'" in resp.json()["msg"]


def test_cancel_stops_the_head_job_and_every_job_it_spawned(
        slurm_api_server: Server) -> None:
    api = slurm_api_server.api("alice")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 300}))
    workdir = slurm_api_server.home / "runs" / run_id
    api.wait(run_id, {"RUNNING"}, timeout=60)
    _wait(lambda: len(jobs_in(workdir)) >= 2, "the nap rule's own SLURM job")
    assert api.post(f"{WES}/runs/{run_id}/cancel").status_code == 200
    assert api.wait(run_id, timeout=60) == "CANCELED"
    _wait(lambda: not jobs_in(workdir), "every job of the run to leave the queue")


def test_the_service_never_runs_jobs_as_itself(slurm_api_server: Server) -> None:
    """Nothing the suite submitted through the API ran as root."""
    out = subprocess.run(["/usr/bin/squeue", "-h", "-a", "-u", "root", "-o", "%i|%Z"],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    assert str(slurm_api_server.home) not in out
    assert os.geteuid() == 0  # the suite itself is root; the jobs were not


def _wait(check: object, what: str, timeout: float = 90) -> None:
    import time
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
