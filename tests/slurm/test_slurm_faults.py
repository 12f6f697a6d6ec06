"""SLURM faults give the right WES state and a useful message: a job hitting its time
limit, a job exceeding its memory, its node set DOWN, and the controller restarted while a
run is in flight (the run still ends COMPLETE)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import WES, Api, Server
from tests.slurm_cluster import SlurmCluster


def system_logs(api: Api, run_id: str) -> str:
    return " ".join(api.get(f"{WES}/runs/{run_id}").json()["run_log"]["system_logs"])


@pytest.fixture
def node_back(cluster: SlurmCluster) -> Iterator[None]:
    yield
    subprocess.run(["/usr/bin/scontrol", "update", f"nodename={cluster.node}",
                    "state=resume"], check=False, timeout=30, capture_output=True)
    cluster.script("start")  # waits until the node accepts jobs again


@pytest.mark.slow
def test_a_job_over_its_time_limit_is_an_executor_error_naming_the_limit(
        slurm_api_server: Server) -> None:
    api = slurm_api_server.api("alice")  # the site limit is 1 minute (conftest)
    run_id = api.run_id(api.submit("hog", {"megabytes": 1, "seconds": 300}))
    assert api.wait(run_id, timeout=200) == "EXECUTOR_ERROR"
    assert "time limit (TIMEOUT)" in system_logs(api, run_id)


def test_a_job_over_its_memory_is_an_executor_error_naming_memory(
        slurm_api_server: Server) -> None:
    api = slurm_api_server.api("alice")  # the head job gets the manifest's 400 MB
    run_id = api.run_id(api.submit("hog", {"megabytes": 1500, "seconds": 60}))
    assert api.wait(run_id, timeout=120) == "EXECUTOR_ERROR"
    assert "memory" in system_logs(api, run_id)


def test_a_node_set_down_mid_run_is_a_system_error_naming_the_node(
        slurm_api_server: Server, cluster: SlurmCluster, node_back: None) -> None:
    api = slurm_api_server.api("alice")
    run_id = api.run_id(api.submit("hog", {"megabytes": 1, "seconds": 120}))
    api.wait(run_id, {"RUNNING"}, timeout=60)
    cluster.scontrol("update", f"nodename={cluster.node}", "state=down", "reason=spe-test")
    assert api.wait(run_id, timeout=90) == "SYSTEM_ERROR"
    assert "NODE_FAIL" in system_logs(api, run_id)


def test_a_controller_restart_mid_run_does_not_disturb_the_run(
        slurm_api_server: Server, cluster: SlurmCluster) -> None:
    api = slurm_api_server.api("alice")
    run_id = api.run_id(api.submit("hog", {"megabytes": 1, "seconds": 8}))
    api.wait(run_id, {"RUNNING"}, timeout=60)
    cluster.script("stop-controller")
    time.sleep(2)  # the reconciler polls while the controller is away (UNKNOWN, no change)
    assert api.get(f"{WES}/runs/{run_id}/status").json()["state"] == "RUNNING"
    cluster.script("restart-controller")
    assert api.wait(run_id, timeout=120) == "COMPLETE", system_logs(api, run_id)
