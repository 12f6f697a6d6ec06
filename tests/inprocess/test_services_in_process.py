"""The runs, data and airlock services through the real API, built in this process on
SQLite with the fake executor (``tests/inprocess/harness.py``): they run in the fast tier.
The same paths against a real server and real Snakemake runs are in tests/api,
tests/security and tests/airlock."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from tests.helpers import ROOT, WES
from tests.inprocess.harness import InProcess

RR = "/spe/v1/release-requests"


# --- runs ---------------------------------------------------------------------------------

def test_a_run_completes_with_its_outputs_hashed_and_quarantined(spe: InProcess) -> None:
    run_id = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}))
    assert spe.wait("alice", run_id) == "COMPLETE"
    body = spe.get("alice", f"{WES}/runs/{run_id}").json()
    assert body["run_log"]["exit_code"] == 0
    assert body["request"]["workflow_params"] == {"seconds": 0, "fail": False}
    quarantined = spe.home / "quarantine/demo" / run_id / "results/done.txt"
    assert json.loads(quarantined.read_text()) == {"fail": False, "seconds": 0}
    digest = hashlib.sha256(quarantined.read_bytes()).hexdigest()
    assert body["outputs"]["results/done.txt"] == {
        "class": "File", "size": quarantined.stat().st_size, "checksum": f"sha256:{digest}"}
    assert set(body["outputs"]) == {"results/done.txt", "results/first.txt"}


def test_a_failing_run_is_an_executor_error_with_its_exit_code(spe: InProcess) -> None:
    run_id = spe.run_id(spe.submit("alice", "sleepy", {"fail": True}))
    assert spe.wait("alice", run_id) == "EXECUTOR_ERROR"
    assert spe.get("alice", f"{WES}/runs/{run_id}").json()["run_log"]["exit_code"] == 1


def test_cancel_of_a_running_run_cancels_its_process(spe: InProcess) -> None:
    run_id = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 300}))
    assert spe.wait("alice", run_id, {"RUNNING"}) == "RUNNING"
    assert spe.post("bob", f"{WES}/runs/{run_id}/cancel").status_code == 404
    resp = spe.post("alice", f"{WES}/runs/{run_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert spe.wait("alice", run_id) == "CANCELED"
    assert spe.executor.registry[f"run:{run_id}"].canceled_at is not None
    assert spe.post("alice", f"{WES}/runs/{run_id}/cancel").status_code == 200  # idempotent


def test_runs_are_visible_to_their_owner_only_in_an_owner_visibility_project(
        spe: InProcess) -> None:
    mine = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}))
    spe.wait("alice", mine)
    assert spe.get("bob", f"{WES}/runs/{mine}").status_code == 404
    assert [r["run_id"] for r in spe.get("alice", f"{WES}/runs").json()["runs"]] == [mine]
    assert spe.get("bob", f"{WES}/runs").json()["runs"] == []
    counts = spe.get("alice", f"{WES}/service-info").json()["system_state_counts"]
    assert counts["COMPLETE"] == 1
    assert spe.client.get(f"{WES}/runs").status_code == 401


def test_a_workflow_off_the_allowlist_is_refused_and_nothing_runs(spe: InProcess) -> None:
    resp = spe.submit("alice", "https://example.org/evil.smk")
    assert resp.status_code == 403 and "allowlist" in resp.json()["msg"]
    assert spe.executor.registry == {}


def test_a_repeated_idempotency_key_returns_the_first_run(spe: InProcess) -> None:
    first = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}, **{"Idempotency-Key": "k1"}))
    again = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}, **{"Idempotency-Key": "k1"}))
    assert again == first
    other = spe.submit("alice", "sleepy", {"seconds": 1}, **{"Idempotency-Key": "k1"})
    assert other.status_code == 409 and "different request" in other.json()["msg"]


# --- data ---------------------------------------------------------------------------------

def test_datasets_listing_shows_what_the_caller_may_use(spe: InProcess) -> None:
    def ids(user: str) -> list[str]:
        return [d["id"] for d in spe.get(user, "/spe/v1/datasets").json()["datasets"]]

    assert ids("alice") == ["demo-cohorts"]
    assert ids("nobody") == []


def test_an_input_is_staged_read_only_from_its_dataset(spe: InProcess) -> None:
    run_id = spe.run_id(spe.submit("alice", "tsv-summary@1.1.0",
                                   {"input": "dataset://demo-cohorts/cohort_a.tsv"}))
    assert spe.wait("alice", run_id) == "COMPLETE"
    staged = spe.home / "runs" / run_id / "inputs/demo-cohorts/cohort_a.tsv"
    assert staged.is_symlink()
    assert staged.resolve() == ROOT / "examples/datasets/demo-cohorts/cohort_a.tsv"


@pytest.mark.parametrize(("ref", "status", "why"), [
    ("dataset://demo-cohorts/../x.tsv", 400, "'..' segments are not allowed"),
    ("dataset://demo-cohorts/missing.tsv", 400, "is not a file of the dataset"),
    ("dataset://elsewhere/cohort_a.tsv", 403, "may not be used by you in project 'demo'"),
    ("/etc/passwd", 400, "not a dataset:// reference nor inside a registered dataset")])
def test_inputs_outside_a_permitted_dataset_are_refused_before_anything_runs(
        spe: InProcess, ref: str, status: int, why: str) -> None:
    resp = spe.submit("alice", "tsv-summary@1.1.0", {"input": ref})
    assert resp.status_code == status, resp.text
    assert why in resp.json()["msg"]
    assert spe.executor.registry == {}
    assert not (spe.home / "runs").exists() or not any((spe.home / "runs").iterdir())


# --- airlock ------------------------------------------------------------------------------

def _request(spe: InProcess, run_id: str, user: str = "alice") -> Any:
    return spe.post(user, RR, json={"run_id": run_id,
                                    "files": ["results/done.txt", "results/first.txt"],
                                    "justification": "Aggregate values only."})


def _vote(spe: InProcess, user: str, req_id: str, path: str) -> Any:
    return spe.post(user, f"{RR}/{req_id}/votes",
                    json={"path": path, "decision": "approve", "reason": "Checked."})


def test_two_reviewers_release_and_only_the_requester_downloads(spe: InProcess) -> None:
    run_id = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}))
    assert spe.wait("alice", run_id) == "COMPLETE"
    resp = _request(spe, run_id)
    assert resp.status_code == 201, resp.text
    req = resp.json()
    assert req["state"] == "IN_REVIEW"
    own = _vote(spe, "alice", req["id"], "results/done.txt")
    assert own.status_code == 403 and "own request" in own.json()["msg"]
    body: dict[str, Any] = {}
    for user in ("rita", "rex"):
        for path in ("results/done.txt", "results/first.txt"):
            vote = _vote(spe, user, req["id"], path)
            assert vote.status_code == 200, vote.text
            body = vote.json()
    assert body["state"] in ("APPROVED", "RELEASED"), body  # the release follows the vote
    assert _released(spe, req["id"]) == "RELEASED"
    url = f"{RR}/{req['id']}/download"
    download = spe.get("alice", url, params={"path": "results/done.txt"})
    assert download.status_code == 200, download.text
    quarantined = spe.home / "quarantine/demo" / run_id / "results/done.txt"
    assert download.content == quarantined.read_bytes()
    assert spe.get("bob", url, params={"path": "results/done.txt"}).status_code == 404


def test_a_release_of_an_unfinished_or_foreign_run_is_refused(spe: InProcess) -> None:
    running = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 300}))
    spe.wait("alice", running, {"RUNNING"})
    refused = _request(spe, running)
    assert refused.status_code == 409 and "only the outputs of a completed" in refused.text
    done = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}))
    spe.wait("alice", done)
    assert _request(spe, done, user="bob").status_code == 404


def _released(spe: InProcess, req_id: str, timeout: float = 20) -> str:
    """The request's state once it is no longer APPROVED (released in the background)."""
    deadline = time.monotonic() + timeout
    state = "APPROVED"
    while state == "APPROVED" and time.monotonic() < deadline:
        time.sleep(0.05)
        state = spe.get("alice", f"{RR}/{req_id}").json()["state"]
    return str(state)
