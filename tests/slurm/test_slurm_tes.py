"""TES tasks on the real single-node SLURM cluster: one SLURM job per task, run as the
researcher's POSIX account in the project's account, its executors in real Charliecloud
containers (an unprivileged user namespace), the image readable by the researchers' group
only; cancel removes the job from the queue; kill -9 of the service mid-task loses
nothing."""

from __future__ import annotations

import grp
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tes

from tests.helpers import Server
from tests.slurm.conftest import slurm_server
from tests.slurm_cluster import SlurmCluster
from tests.tes.conftest import busybox_root, import_image

TES = "/ga4gh/tes/v1"


@pytest.fixture(scope="module")
def tes_slurm(cluster: SlurmCluster, slurm_home: Path, catalog_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = slurm_home / "tes"
    home.mkdir()
    home.chmod(0o711)  # mkdir's mode is masked by the umask
    root = busybox_root(tmp_path_factory.mktemp("slurm-image") / "busybox")
    import_image(home, root, "busybox", "1.36", "alpine", group="spe-researchers")
    server = slurm_server(home, catalog_dir, cluster,
                          SPE_IMAGE_GROUP="spe-researchers",
                          SPE_SLURM_MAX_TIME_MINUTES="5").start()
    yield server
    server.stop()


def tes_client(server: Server) -> tes.HTTPClient:
    return tes.HTTPClient(server.url, token=server.token("alice"))


def wait(server: Server, task_id: str, states: set[str], timeout: float = 180
         ) -> dict[str, Any]:
    api = server.api("alice")
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = api.get(f"{TES}/tasks/{task_id}", params={"view": "FULL"}).json()
        if body.get("state") in states:
            return body
        time.sleep(0.3)
    raise AssertionError(f"task {task_id}: {body.get('state')} {server.log_tail()}")


def in_queue(job_id: str) -> bool:
    out = subprocess.run(["/usr/bin/squeue", "-h", "-a", "-j", job_id, "-o", "%i"],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    return job_id in out.split()


def test_a_task_runs_as_one_slurm_job_of_the_researcher_in_containers(
        tes_slurm: Server, cluster: SlurmCluster) -> None:
    cli = tes_client(tes_slurm)
    task_id = cli.create_task(tes.Task(
        name="on slurm",
        inputs=[tes.Input(path="/data/cohort.tsv",
                          url="dataset://demo-cohorts/cohort_a.tsv")],
        outputs=[tes.Output(path="/data/lines.txt", url="quarantine:///lines.txt"),
                 tes.Output(path="/data/who.txt", url="quarantine:///who.txt")],
        executors=[tes.Executor(image="alpine", command=[
            "sh", "-c", "wc -l < /data/cohort.tsv > /data/lines.txt; id -u > /data/who.txt"])],
        resources=tes.Resources(cpu_cores=1, ram_gb=0.25,
                                backend_parameters={"time": "00:02:00"})))
    full = wait(tes_slurm, task_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"})
    assert full["state"] == "COMPLETE", (full, tes_slurm.log_tail())
    job_id = full["logs"][0]["metadata"]["job_id"]
    record = cluster.scontrol("show", "job", "-o", job_id)
    assert "UserId=spe-alice(" in record and "Account=demo" in record
    assert "TimeLimit=00:02:00" in record
    q = tes_slurm.home / "quarantine/demo" / task_id
    assert int((q / "lines.txt").read_text()) > 1
    assert int((q / "who.txt").read_text()) == pwd.getpwnam("spe-alice").pw_uid
    work = tes_slurm.home / "runs" / task_id / "work" / "data" / "lines.txt"
    assert pwd.getpwuid(work.stat().st_uid).pw_name == "spe-alice"
    assert grp.getgrgid(work.stat().st_gid).gr_name == "spe-demo"


def test_cancel_removes_the_tasks_job_from_the_queue(tes_slurm: Server) -> None:
    cli = tes_client(tes_slurm)
    task_id = cli.create_task(tes.Task(executors=[tes.Executor(
        image="alpine", command=["sleep", "600"])]))
    running = wait(tes_slurm, task_id, {"RUNNING"})
    job_id = (tes_slurm.home / "runs" / task_id / "slurm_job_id").read_text().strip()
    assert in_queue(job_id), running
    cli.cancel_task(task_id)
    assert wait(tes_slurm, task_id, {"CANCELED"})["state"] == "CANCELED"
    deadline = time.monotonic() + 60
    while in_queue(job_id):
        assert time.monotonic() < deadline, f"SLURM job {job_id} is still queued"
        time.sleep(0.5)


def test_kill9_of_the_service_mid_task_loses_nothing(tes_slurm: Server) -> None:
    cli = tes_client(tes_slurm)
    task_id = cli.create_task(tes.Task(
        outputs=[tes.Output(path="/data/done.txt", url="quarantine:///done.txt")],
        executors=[tes.Executor(image="alpine", command=[
            "sh", "-c", "sleep 4; echo finished > /data/done.txt"])]))
    wait(tes_slurm, task_id, {"RUNNING"})
    tes_slurm.stop(signal.SIGKILL)
    tes_slurm.start()
    full = wait(tes_slurm, task_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"})
    assert full["state"] == "COMPLETE", full
    assert (tes_slurm.home / "quarantine/demo" / task_id / "done.txt").read_text() == \
        "finished\n"
    assert [e["exit_code"] for e in full["logs"][0]["logs"]] == [0]
