"""Issue 11, findings 1 and 8: the engine's log is output. What the API returns about a run
is what the service generates; the raw log leaves only through the airlock, or, in a
project that opted in with ``logs: direct``, to its researchers (each read audited), and
never to operators."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import WES, Api, Server

SECRET = "Zephyrine Quillfeather"  # a recognisable first record of a non-conforming input
RR = "/spe/v1/release-requests"
GROUPS = {
    "alice": ("spe:proj-a",),
    "rita": ("spe:proj-a", "spe:proj-a:role=reviewer"),
    "rex": ("spe:proj-a", "spe:proj-a:role=reviewer"),
    "bob": ("spe:proj-b",), "bill": ("spe:proj-b",),
    "oscar": ("spe:proj-b:role=operator",),  # a project-scoped operator of proj-b
    "olga": ("spe:operators",),
}


def policy(data_dir: Path) -> dict[str, Any]:
    group = "urn:geant:dev.invalid:group:spe"
    return {
        "trusted_authorities": ["dev.invalid"],
        "projects": [
            {"id": "proj-a", "title": "A", "entitlements": [f"{group}:proj-a"]},
            {"id": "proj-b", "title": "B (non-sensitive data, raw logs allowed)",
             "entitlements": [f"{group}:proj-b"], "visibility": "project",
             "logs": "direct"},
        ],
        "roles": [
            {"role": "reviewer", "project": "proj-a",
             "entitlement": f"{group}:proj-a:role=reviewer"},
            {"role": "operator", "project": "proj-b",
             "entitlement": f"{group}:proj-b:role=operator"},
            {"role": "operator", "project": "*", "entitlement": f"{group}:operators"},
        ],
        "datasets": [{"id": "notes", "location": str(data_dir),
                      "projects": ["proj-a", "proj-b"]}],
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("engine-logs")
    data = tmp_path_factory.mktemp("engine-logs-data")
    # not a cohort TSV: a JSON list of people, whose first line becomes the "header"
    (data / "people.tsv").write_text(
        json.dumps([{"name": SECRET, "diagnosis": "x"}]) + "\n", encoding="utf-8")
    path = home.parent / "engine-logs-policy.yaml"
    path.write_text(yaml.safe_dump(policy(data)))
    server = Server(home=home, catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(path)}).start()
    yield server
    server.stop()


def as_user(srv: Server, name: str) -> Api:
    return Api(srv.url, srv.token(name, groups=GROUPS[name]))


def finished_run(srv: Server, user: str, workflow: str, params: dict[str, Any]) -> str:
    api = as_user(srv, user)
    run_id = api.run_id(api.submit(workflow, params))
    api.wait(run_id)
    return run_id


def bad_input_run(srv: Server, user: str) -> str:
    run_id = finished_run(srv, user, "tsv-summary@1.1.0",
                          {"input": "dataset://notes/people.tsv"})
    assert as_user(srv, user).get(f"{WES}/runs/{run_id}/status").json()["state"] \
        == "EXECUTOR_ERROR"
    return run_id


def everything_about(api: Api, run_id: str) -> list[tuple[str, int, str]]:
    paths = [f"{WES}/runs/{run_id}", f"{WES}/runs/{run_id}/status",
             f"{WES}/runs/{run_id}/tasks", f"/spe/v1/runs/{run_id}/outputs",
             f"/spe/v1/runs/{run_id}/logs/stderr", f"/spe/v1/runs/{run_id}/logs/stdout",
             f"{WES}/runs?page_size=100"]
    tasks = api.get(f"{WES}/runs/{run_id}/tasks").json().get("task_logs", [])
    paths += [f"{WES}/runs/{run_id}/tasks/{t['id']}" for t in tasks]
    answers = []
    for path in paths:
        resp = api.get(path)
        answers.append((path, resp.status_code, resp.text))
    return answers


def audit_rows(srv: Server, action: str, target: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(srv.home / "spe.db") as db:
        return db.execute("SELECT actor, outcome, details FROM audit_events WHERE action = ? "
                          "AND target = ? ORDER BY id", (action, target)).fetchall()


def test_engine_log_does_not_carry_data_out(srv: Server) -> None:
    run_id = bad_input_run(srv, "alice")
    alice = as_user(srv, "alice")
    for path, status, text in everything_about(alice, run_id):
        assert SECRET not in text, (path, status)
    refused = alice.get(f"/spe/v1/runs/{run_id}/logs/stderr")
    assert refused.status_code == 403
    assert "airlock" in refused.json()["msg"] and "_logs/stderr.txt" in refused.json()["msg"]
    run_log = alice.get(f"{WES}/runs/{run_id}").json()["run_log"]
    assert "stderr" not in run_log and "stdout" not in run_log
    # the run itself did fail on the input, and its log is kept for the airlock
    assert "header is" not in (srv.home / "quarantine/proj-a" / run_id
                               / "_logs/stderr.txt").read_text()


def test_project_operator_cannot_read_engine_logs(srv: Server) -> None:
    run_id = finished_run(srv, "bob", "sleepy", {"seconds": 0})
    oscar = as_user(srv, "oscar")
    assert oscar.get(f"{WES}/runs/{run_id}").status_code == 200  # metadata: yes
    for stream in ("stderr", "stdout"):
        assert oscar.get(f"/spe/v1/runs/{run_id}/logs/{stream}").status_code == 403
    assert as_user(srv, "olga").get(f"/spe/v1/runs/{run_id}/logs/stderr").status_code == 403


def test_logs_direct_project_may_read_its_logs_and_each_read_is_audited(srv: Server) -> None:
    run_id = finished_run(srv, "bob", "sleepy", {"seconds": 0})
    for user in ("bob", "bill"):  # the owner; a member of a project sharing its runs
        resp = as_user(srv, user).get(f"/spe/v1/runs/{run_id}/logs/stderr")
        assert resp.status_code == 200 and "rule first" in resp.text, resp.text
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    capped = as_user(srv, "bob").get(f"/spe/v1/runs/{run_id}/logs/stderr?max_bytes=10")
    assert len(capped.content) == 10 and capped.content == resp.content[-10:]
    run_log = as_user(srv, "bob").get(f"{WES}/runs/{run_id}").json()["run_log"]
    assert run_log["stderr"].endswith(f"/spe/v1/runs/{run_id}/logs/stderr")
    rows = audit_rows(srv, "run.read_logs", run_id)
    assert [(actor, outcome) for actor, outcome, _ in rows] == [
        ("dev|bob", "granted"), ("dev|bill", "granted"), ("dev|bob", "granted")]
    assert json.loads(rows[0][2]) == {"stream": "stderr", "project": "proj-b"}
    assert as_user(srv, "oscar").get(f"/spe/v1/runs/{run_id}/logs/stderr").status_code == 403
    # in proj-a (no opt-in), even the owner does not read the raw log
    own = finished_run(srv, "alice", "sleepy", {"seconds": 0})
    assert as_user(srv, "alice").get(f"/spe/v1/runs/{own}/logs/stderr").status_code == 403


def wait_for(srv: Server, req_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = as_user(srv, "alice").get(f"{RR}/{req_id}").json()
        if body["state"] == state:
            return body
        time.sleep(0.1)
    raise AssertionError(f"request {req_id} still {body.get('state')}")


def test_a_requested_engine_log_is_released_through_the_airlock(srv: Server) -> None:
    run_id = bad_input_run(srv, "alice")  # a failed run: its log is what the owner needs
    alice = as_user(srv, "alice")
    quarantined = srv.home / "quarantine/proj-a" / run_id / "_logs/stderr.txt"
    resp = alice.post(RR, json={"run_id": run_id, "files": ["_logs/stderr.txt"],
                                "justification": "Why did the run fail? Engine log only."})
    assert resp.status_code == 201, resp.text
    req = resp.json()
    assert req["state"] == "IN_REVIEW", req
    preview = as_user(srv, "rita").get(f"{RR}/{req['id']}/preview",
                                       params={"path": "_logs/stderr.txt"})
    assert preview.status_code == 200
    assert preview.content == quarantined.read_bytes()[:len(preview.content)]
    assert "validate" in preview.text  # the engine's own account of the failed rule
    for reviewer in ("rita", "rex"):
        vote = as_user(srv, reviewer).post(f"{RR}/{req['id']}/votes", json={
            "path": "_logs/stderr.txt", "decision": "approve", "reason": "No data in it."})
        assert vote.status_code == 200, vote.text
    wait_for(srv, req["id"], "RELEASED")
    got = alice.get(f"{RR}/{req['id']}/download", params={"path": "_logs/stderr.txt"})
    assert got.status_code == 200 and got.content == quarantined.read_bytes()
    # only the engine's two streams are reserved names; nothing else of the run directory
    other = alice.post(RR, json={"run_id": run_id, "files": ["_logs/params.json"],
                                 "justification": "x"})
    assert other.status_code == 400


def test_spe_run_logs_follow_prints_the_direct_log_until_the_run_ends(srv: Server) -> None:
    """`spe run logs -f` where the project reads its engine logs directly: the log as it
    grows, each line once, ending when the run does."""
    env = {**os.environ, "SPE_URL": srv.url, "SPE_CLI_RETRIES": "2",
           "SPE_TOKEN": srv.token("bob", groups=GROUPS["bob"])}
    bob = as_user(srv, "bob")
    run_id = bob.run_id(bob.submit("sleepy", {"seconds": 4}))
    bob.wait(run_id, {"RUNNING"})
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "run", "logs", "-f",
                             run_id], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert bob.get(f"{WES}/runs/{run_id}/status").json()["state"] == "COMPLETE"
    whole = bob.get(f"/spe/v1/runs/{run_id}/logs/stderr").text
    assert result.stdout == whole  # every line once, in order, up to the end
    assert "rule finish" in result.stdout
