"""The airlock heals itself, against real `spe serve` processes: a server killed with
SIGKILL in the middle of a release, or with a request left in CHECKING or SUBMITTED, is
restarted, and its reconciler carries every request on; the release happens exactly once
(one RELEASED, one ``release.release`` / ``released`` event, the outbox copies with their
digests)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Api, Server

RR = "/spe/v1/release-requests"
REVIEWER = ("spe:demo", "spe:demo:role=reviewer")
FILES = ["results/done.txt", "results/first.txt"]
CLAIM_SECONDS = 3  # how soon a restarted server takes over the killed one's release


def as_user(srv: Server, name: str) -> Api:
    groups = {"alice": ("spe:demo",), "olga": ("spe:operators",)}.get(name, REVIEWER)
    return Api(srv.url, srv.token(name, groups=groups))


def start(home: Path, catalog: Path, port: int | None = None) -> Server:
    env = {"SPE_RELEASE_CLAIM_SECONDS": str(CLAIM_SECONDS)}
    if port is None:
        return Server(home=home, catalog=catalog, env_extra=env).start()
    return Server(home=home, catalog=catalog, port=port, env_extra=env).start()


@pytest.fixture
def srv(tmp_path: Path, catalog_dir: Path) -> Iterator[Server]:
    srv = start(tmp_path / "home", catalog_dir)
    yield srv
    srv.stop()


def completed_run(srv: Server) -> str:
    alice = as_user(srv, "alice")
    run_id = alice.run_id(alice.submit("sleepy", {"seconds": 0}))
    assert alice.wait(run_id) == "COMPLETE"
    return run_id


def new_request(srv: Server, run_id: str) -> dict[str, Any]:
    resp = as_user(srv, "alice").post(RR, json={
        "run_id": run_id, "files": FILES,
        "justification": "Summary counts for the paper, no individual data."})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    assert body["state"] == "IN_REVIEW", body
    return body


def approve_all(srv: Server, req: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for user in ("rita", "rex"):
        for path in FILES:
            resp = as_user(srv, user).post(f"{RR}/{req['id']}/votes", json={
                "path": path, "decision": "approve", "reason": "aggregate values only"})
            assert resp.status_code == 200, resp.text
            body = resp.json()
    return body


def eventually(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def state_of(srv: Server, request_id: str) -> str:
    return str(as_user(srv, "alice").get(f"{RR}/{request_id}").json()["state"])


def audit_events(srv: Server, request_id: str, action: str) -> list[str]:
    """The outcomes of ``action`` on the request, from the audit API (an operator)."""
    resp = as_user(srv, "olga").get("/spe/v1/audit", params={
        "target": request_id, "action": action, "page_size": 500})
    assert resp.status_code == 200, resp.text
    return [e["outcome"] for e in resp.json()["events"]]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_release_killed_midway_completes_exactly_once_after_a_restart(
        tmp_path: Path, catalog_dir: Path) -> None:
    srv = start(tmp_path / "home", catalog_dir)
    try:
        run_id = completed_run(srv)
        req = new_request(srv, run_id)
        outbox = srv.home / "outbox/demo" / req["id"]
        second = srv.home / "quarantine/demo" / run_id / FILES[1]
        original = second.read_bytes()
        # the release reads the second file through a FIFO nobody writes: it copies the
        # first file, then blocks on the second until the process dies
        second.unlink()
        os.mkfifo(second)
        assert approve_all(srv, req)["state"] == "APPROVED"
        eventually("the first file in the outbox", (outbox / FILES[0]).is_file)
        assert not (outbox / FILES[1]).exists()
        assert state_of(srv, req["id"]) == "APPROVED"
    finally:
        srv.stop(signal.SIGKILL)  # no shutdown handler runs, the release is cut off
    second.unlink()
    second.write_bytes(original)

    restarted = start(srv.home, catalog_dir, port=srv.port)
    try:
        eventually("the release", lambda: state_of(restarted, req["id"]) == "RELEASED")
        time.sleep(1.5)  # a few more reconciler rounds: nothing is released again
        assert audit_events(restarted, req["id"], "release.release") == ["released"]
        assert audit_events(restarted, req["id"], "release.decide") == ["approved"]
        body = as_user(restarted, "alice").get(f"{RR}/{req['id']}").json()
        assert body["state"] == "RELEASED" and body["reason"] == ""
        for f in req["files"]:
            assert sha256(outbox / f["path"]) == f["sha256"], f["path"]
        crate = json.loads((outbox / "ro-crate-metadata.json").read_text())
        assert crate == as_user(restarted, "alice").get(f"{RR}/{req['id']}/crate").json()
        assert all(f["sha256"] in json.dumps(crate) for f in req["files"])
        download = as_user(restarted, "alice").get(f"{RR}/{req['id']}/download",
                                                   params={"path": FILES[1]})
        assert download.status_code == 200 and download.content == original
    finally:
        restarted.stop()


def set_state(home: Path, request_id: str, state: str) -> None:
    """What a crash during the checks leaves: the state, no findings, no reason."""
    with sqlite3.connect(home / "spe.db") as db:
        db.execute("UPDATE release_requests SET state = ?, findings = '[]', reason = '' "
                   "WHERE id = ?", (state, request_id))


def test_requests_left_in_checking_or_submitted_are_checked_after_a_restart(
        srv: Server, catalog_dir: Path) -> None:
    run_id = completed_run(srv)
    checking, submitted = new_request(srv, run_id), new_request(srv, run_id)
    srv.stop(signal.SIGKILL)
    set_state(srv.home, checking["id"], "CHECKING")
    set_state(srv.home, submitted["id"], "SUBMITTED")

    restarted = start(srv.home, catalog_dir, port=srv.port)
    try:
        for req in (checking, submitted):
            eventually(f"the checks of {req['id']}",
                       lambda r=req: state_of(restarted, r["id"]) == "IN_REVIEW")
            body = as_user(restarted, "alice").get(f"{RR}/{req['id']}").json()
            assert {f["check"] for f in body["findings"]} >= {"file_type", "size", "path"}
            assert body["findings"] == req["findings"]
            # the first checks, and those of the reconciler after the restart
            assert audit_events(restarted, req["id"], "release.checks") == ["in_review"] * 2
        # reviewable and releasable as usual
        approve_all(restarted, checking)
        eventually("the release", lambda: state_of(restarted, checking["id"]) == "RELEASED")
    finally:
        restarted.stop()
