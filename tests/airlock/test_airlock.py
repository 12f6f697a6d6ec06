"""The airlock over HTTP against a real server: the full two-reviewer release, and one test
per bypass, each refused (and audited)."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.helpers import ROOT, Api, Server

GROUPS = {
    "alice": ("spe:proj-a",), "amy": ("spe:proj-a",),
    "rita": ("spe:proj-a", "spe:proj-a:role=reviewer"),
    "rex": ("spe:proj-a", "spe:proj-a:role=reviewer"),
    "bert": ("spe:proj-b", "spe:proj-b:role=reviewer"),
    "olga": ("spe:operators",),
}
RR = "/spe/v1/release-requests"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("airlock")
    policy = yaml.safe_load((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    policy["roles"].append({"role": "reviewer", "project": "proj-b",
                            "entitlement": "urn:geant:dev.invalid:group:spe:proj-b:role=reviewer"})
    (home.parent / "airlock-policy.yaml").write_text(yaml.safe_dump(policy))
    server = Server(home=home, catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(home.parent / "airlock-policy.yaml")}
                    ).start()
    yield server
    server.stop()


def as_user(srv: Server, name: str) -> Api:
    return Api(srv.url, srv.token(name, groups=GROUPS[name]))


@pytest.fixture(scope="module")
def run_id(srv: Server) -> str:
    alice = as_user(srv, "alice")
    rid = alice.run_id(alice.submit("sleepy", {"seconds": 0}))
    assert alice.wait(rid) == "COMPLETE"
    return rid


def request(srv: Server, run_id: str, files: list[str] | None = None,
            user: str = "alice") -> requests.Response:
    return as_user(srv, user).post(RR, json={
        "run_id": run_id, "files": files or ["results/done.txt", "results/first.txt"],
        "justification": "Summary counts for the paper, no individual data."})


def new_request(srv: Server, run_id: str, **kw: Any) -> dict[str, Any]:
    resp = request(srv, run_id, **kw)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    assert body["state"] == "IN_REVIEW", body
    return body


def vote(srv: Server, user: str, req_id: str, path: str, decision: str = "approve"
         ) -> requests.Response:
    return as_user(srv, user).post(f"{RR}/{req_id}/votes", json={
        "path": path, "decision": decision, "reason": "Checked: aggregate values only."})


def approve_all(srv: Server, req: dict[str, Any], users: tuple[str, ...] = ("rita", "rex")
                ) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for user in users:
        for f in req["files"]:
            resp = vote(srv, user, req["id"], f["path"])
            assert resp.status_code == 200, resp.text
            body = resp.json()
    return body


def wait_for(srv: Server, req_id: str, states: set[str], user: str = "alice",
             timeout: float = 30) -> dict[str, Any]:
    """The request once it is in one of ``states`` (the release follows the decision in
    the background)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        resp = as_user(srv, user).get(f"{RR}/{req_id}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if body["state"] in states:
            return body
        time.sleep(0.1)
    raise AssertionError(f"request {req_id} still {body.get('state')} after {timeout} s")


def audit_actions(srv: Server, target: str) -> list[tuple[str, str]]:
    with sqlite3.connect(srv.home / "spe.db") as db:
        return db.execute("SELECT action, outcome FROM audit_events WHERE target = ? "
                          "ORDER BY id", (target,)).fetchall()


def test_two_independent_reviewers_release_and_the_requester_downloads(
        srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id)
    assert {f["check"] for f in req["findings"]} >= {"file_type", "size", "path"}
    first = vote(srv, "rita", req["id"], "results/done.txt").json()
    assert first["state"] == "IN_REVIEW"
    # blind review: rex sees none of rita's votes yet
    assert as_user(srv, "rex").get(f"{RR}/{req['id']}").json()["votes"] == []
    assert vote(srv, "rita", req["id"], "results/first.txt").status_code == 200
    decided = approve_all(srv, req, users=("rex",))
    assert decided["state"] in ("APPROVED", "RELEASED"), decided  # released in the background
    final = wait_for(srv, req["id"], {"RELEASED"})
    assert {v["reviewer"] for v in final["votes"]} == {"rita", "rex"}
    resp = as_user(srv, "alice").get(f"{RR}/{req['id']}/download",
                                     params={"path": "results/done.txt"})
    assert resp.status_code == 200
    quarantined = srv.home / "quarantine/proj-a" / run_id / "results/done.txt"
    assert resp.content == quarantined.read_bytes()
    crate = as_user(srv, "alice").get(f"{RR}/{req['id']}/crate").json()
    ids = {e["@id"] for e in crate["@graph"]}
    assert "ro-crate-metadata.json" in ids
    text = str(crate)
    assert hashlib.sha256(resp.content).hexdigest() in text and "sleepy" in text
    events = audit_actions(srv, req["id"])
    assert events.count(("release.release", "released")) == 1
    assert events.count(("release.decide", "approved")) == 1


def test_self_approval_is_refused(srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id)
    resp = vote(srv, "alice", req["id"], "results/done.txt")
    assert resp.status_code == 403 and "own request" in resp.json()["msg"]
    assert ("release.vote", "denied") in audit_actions(srv, req["id"])


@pytest.mark.parametrize(("user", "status"), [("amy", 404), ("bert", 404), ("olga", 403)])
def test_approval_by_a_non_reviewer_or_another_projects_reviewer_is_refused(
        srv: Server, run_id: str, user: str, status: int) -> None:
    req = new_request(srv, run_id)
    assert vote(srv, user, req["id"], "results/done.txt").status_code == status


def test_a_second_vote_by_the_same_reviewer_is_refused(srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id)
    assert vote(srv, "rita", req["id"], "results/done.txt").status_code == 200
    again = vote(srv, "rita", req["id"], "results/done.txt", "reject")
    assert again.status_code == 409


def test_a_vote_after_the_decision_is_refused(srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id, files=["results/done.txt"])
    assert vote(srv, "rita", req["id"], "results/done.txt", "reject").status_code == 200
    decided = vote(srv, "rex", req["id"], "results/done.txt", "approve").json()
    assert decided["state"] == "REJECTED"
    late = vote(srv, "olga", req["id"], "results/done.txt")
    assert late.status_code in (403, 409)
    assert vote(srv, "rex", req["id"], "results/done.txt").status_code == 409


def test_download_before_release_and_by_another_user_is_refused(
        srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id)
    early = as_user(srv, "alice").get(f"{RR}/{req['id']}/download",
                                      params={"path": "results/done.txt"})
    assert early.status_code == 409
    approve_all(srv, req)
    for user, status in (("amy", 404), ("rita", 403), ("bert", 404)):
        resp = as_user(srv, user).get(f"{RR}/{req['id']}/download",
                                      params={"path": "results/done.txt"})
        assert resp.status_code == status, user


def test_a_file_modified_after_submission_is_not_released(srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id, files=["results/first.txt"])
    quarantined = srv.home / "quarantine/proj-a" / run_id / "results/first.txt"
    original = quarantined.read_bytes()
    quarantined.write_bytes(b"tampered\n")
    try:
        assert approve_all(srv, req)["state"] == "APPROVED"
        deadline = time.monotonic() + 30
        while ("release.release", "failed") not in audit_actions(srv, req["id"]):
            assert time.monotonic() < deadline, "the release never failed"
            time.sleep(0.1)
        final = as_user(srv, "alice").get(f"{RR}/{req['id']}").json()
        assert final["state"] == "APPROVED" and "changed" in final["reason"]
        resp = as_user(srv, "alice").get(f"{RR}/{req['id']}/download",
                                         params={"path": "results/first.txt"})
        assert resp.status_code == 409
        assert not (srv.home / "outbox/proj-a" / req["id"]).exists()
    finally:
        quarantined.write_bytes(original)


@pytest.mark.parametrize("path", ["../../../etc/passwd", "/etc/passwd", "results/../x",
                                  "results\\done.txt"])
def test_a_path_escape_in_the_file_list_is_refused(srv: Server, run_id: str,
                                                   path: str) -> None:
    assert request(srv, run_id, files=[path]).status_code == 400


def test_release_of_a_file_that_is_not_an_output_is_refused(srv: Server, run_id: str) -> None:
    resp = request(srv, run_id, files=["params.json"])
    assert resp.status_code == 400 and "not an output" in resp.json()["msg"]


def test_only_the_runs_owner_may_ask(srv: Server, run_id: str) -> None:
    assert request(srv, run_id, user="amy").status_code == 404


def test_revoke_then_download_is_refused(srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id, files=["results/done.txt"])
    approve_all(srv, req)
    wait_for(srv, req["id"], {"RELEASED"})
    assert as_user(srv, "alice").post(f"{RR}/{req['id']}/revoke").status_code == 403
    revoked = as_user(srv, "rita").post(f"{RR}/{req['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "REVOKED"
    resp = as_user(srv, "alice").get(f"{RR}/{req['id']}/download",
                                     params={"path": "results/done.txt"})
    assert resp.status_code == 409
    assert not (srv.home / "outbox/proj-a" / req["id"] / "results/done.txt").exists()


def test_returned_requests_can_be_resubmitted_or_withdrawn(srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id, files=["results/done.txt"])
    vote(srv, "rita", req["id"], "results/done.txt", "request_changes")
    returned = vote(srv, "rex", req["id"], "results/done.txt").json()
    assert returned["state"] == "RETURNED"
    again = as_user(srv, "alice").post(f"{RR}/{req['id']}/resubmit").json()
    assert again["state"] == "IN_REVIEW" and again["round"] == 2
    assert approve_all(srv, again)["state"] in ("APPROVED", "RELEASED")
    assert wait_for(srv, req["id"], {"RELEASED"})["round"] == 2


def test_reviewers_preview_files_with_safe_headers_and_requesters_cannot(
        srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id, files=["results/done.txt"])
    resp = as_user(srv, "rita").get(f"{RR}/{req['id']}/preview",
                                    params={"path": "results/done.txt"})
    assert resp.status_code == 200 and resp.text == "done\n"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    assert as_user(srv, "alice").get(f"{RR}/{req['id']}/preview",
                                     params={"path": "results/done.txt"}).status_code == 403


def test_a_returned_request_can_be_withdrawn_and_then_nothing_more(
        srv: Server, run_id: str) -> None:
    req = new_request(srv, run_id, files=["results/done.txt"])
    vote(srv, "rita", req["id"], "results/done.txt", "request_changes")
    vote(srv, "rex", req["id"], "results/done.txt", "approve")
    assert as_user(srv, "rita").post(f"{RR}/{req['id']}/withdraw").status_code == 403
    withdrawn = as_user(srv, "alice").post(f"{RR}/{req['id']}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "WITHDRAWN"
    assert as_user(srv, "alice").post(f"{RR}/{req['id']}/resubmit").status_code == 409


def test_the_listing_is_paged_with_signed_tokens_and_filtered(srv: Server, run_id: str) -> None:
    for _ in range(3):
        new_request(srv, run_id)
    alice = as_user(srv, "alice")
    whole = alice.get(RR, params={"role": "requester", "page_size": 500}).json()
    assert whole["next_page_token"] == ""
    ids = [r["id"] for r in whole["requests"]]
    assert len(ids) >= 3 and len(set(ids)) == len(ids)
    created = [r["created_at"] for r in whole["requests"]]
    assert created == sorted(created, reverse=True)
    seen: list[str] = []
    params: dict[str, Any] = {"role": "requester", "page_size": 2}
    while True:
        body = alice.get(RR, params=params).json()
        assert len(body["requests"]) <= 2
        seen += [r["id"] for r in body["requests"]]
        if not body["next_page_token"]:
            break
        params["page_token"] = body["next_page_token"]
    assert seen == ids
    # a token belongs to its listing and its caller; an edited one is refused
    token = alice.get(RR, params={"role": "requester", "page_size": 1}).json()[
        "next_page_token"]
    for who, query in (("alice", {"role": "reviewer"}), ("alice", {"state": "RELEASED"}),
                       ("rita", {"role": "requester"}),
                       ("alice", {"role": "requester", "page_token": token[:-3] + "AAA"})):
        resp = as_user(srv, who).get(RR, params={"page_size": 1, "page_token": token, **query})
        assert resp.status_code == 400, (who, query)
        assert set(resp.json()) >= {"msg", "status_code"}
    # filters: alice reviews nothing; rita sees alice's requests to review, by state
    assert alice.get(RR, params={"role": "reviewer"}).json()["requests"] == []
    rita = as_user(srv, "rita").get(RR, params={"role": "reviewer", "state": "IN_REVIEW",
                                                "page_size": 500}).json()["requests"]
    assert rita and {r["state"] for r in rita} == {"IN_REVIEW"}
    assert {r["id"] for r in rita} <= set(ids)
    assert as_user(srv, "bert").get(RR).json()["requests"] == []  # another project's reviewer
    assert alice.get(RR, params={"page_size": 501}).status_code == 400
