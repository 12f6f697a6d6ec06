"""Runs go through Celery workers: the API (SPE_DISPATCHER=celery) only stores and
publishes; separate `spe worker` processes start, reconcile and cancel."""

from __future__ import annotations

import hashlib
import sqlite3
import time

from tests.celery.cluster import Cluster
from tests.helpers import WES, Api

COHORT = {"input": "dataset://demo-cohorts/cohort_a.tsv", "group_column": "site",
          "value_column": "bmi"}


def _ensure_worker(cluster: Cluster) -> None:
    if not any(proc.poll() is None for proc in cluster.workers):
        cluster.start_worker()


def _state(api: Api, run_id: str) -> str:
    return str(api.get(f"{WES}/runs/{run_id}/status").json()["state"])


def test_a_run_waits_for_a_worker_then_completes(cluster: Cluster) -> None:
    cluster.stop_workers()
    api = cluster.server.api("celery-waits")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    deadline = time.monotonic() + 1.5  # several reconcile intervals of an inline API
    while time.monotonic() < deadline:
        assert _state(api, run_id) == "QUEUED", "the API must not execute runs itself"
        time.sleep(0.1)
    cluster.start_worker()
    assert api.wait(run_id, timeout=60) == "COMPLETE", cluster.logs()
    assert cluster.engine_starts(run_id) == 1


def test_a_dataset_workflow_completes_with_quarantined_outputs(cluster: Cluster) -> None:
    _ensure_worker(cluster)
    api = cluster.server.api("celery-tsv")
    run_id = api.run_id(api.submit("tsv-summary@1.1.0", COHORT))
    assert api.wait(run_id, timeout=90) == "COMPLETE", cluster.logs()
    body = api.get(f"{WES}/runs/{run_id}").json()
    assert body["run_log"]["exit_code"] == 0
    csv = cluster.home / "runs" / run_id / "work" / "results/summary.csv"
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    assert body["outputs"]["results/summary.csv"]["checksum"] == f"sha256:{digest}"


def test_cancel_reaches_the_engine_through_a_worker(cluster: Cluster) -> None:
    _ensure_worker(cluster)
    api = cluster.server.api("celery-cancel")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 300}))
    api.wait(run_id, {"RUNNING"}, timeout=60)
    first = cluster.home / "runs" / run_id / "work/results/first.txt"
    deadline = time.monotonic() + 60
    while not first.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    resp = api.post(f"{WES}/runs/{run_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert api.wait(run_id, timeout=30) == "CANCELED", cluster.logs()


def test_a_workers_reconciler_carries_on_a_release_request_left_in_checking(
        cluster: Cluster) -> None:
    """With Celery the API runs no reconciler: the `spe worker` reconcilers call
    ``ReleaseWork.carry_on`` and check a request left in CHECKING again."""
    _ensure_worker(cluster)
    alice = cluster.server.api("celery-airlock")
    run_id = alice.run_id(alice.submit("sleepy", {"seconds": 0}))
    assert alice.wait(run_id, timeout=60) == "COMPLETE", cluster.logs()
    resp = alice.post("/spe/v1/release-requests", json={
        "run_id": run_id, "files": ["results/done.txt"],
        "justification": "A flag file, for the Celery airlock test."})
    assert resp.status_code == 201 and resp.json()["state"] == "IN_REVIEW", resp.text
    request_id = resp.json()["id"]
    cluster.stop_workers()
    with sqlite3.connect(cluster.home / "spe.db") as db:
        db.execute("UPDATE release_requests SET state = 'CHECKING', findings = '[]' "
                   "WHERE id = ?", (request_id,))

    def state() -> str:
        return str(alice.get(f"/spe/v1/release-requests/{request_id}").json()["state"])

    deadline = time.monotonic() + 1.5  # several reconcile intervals of an inline API
    while time.monotonic() < deadline:
        assert state() == "CHECKING", "the API must not carry requests on itself"
        time.sleep(0.1)
    cluster.start_worker()
    deadline = time.monotonic() + 60
    while state() != "IN_REVIEW":
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.2)
    findings = alice.get(f"/spe/v1/release-requests/{request_id}").json()["findings"]
    assert {f["check"] for f in findings} >= {"file_type", "size", "path"}
