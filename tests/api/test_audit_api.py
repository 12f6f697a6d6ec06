"""``GET /spe/v1/audit`` against a real server: operators search the events the server
wrote (authentication failures, run submissions), filtered and paged newest first with
signed tokens; everyone else is refused (and the refusal is audited); the chain the
server wrote verifies with ``spe audit verify``."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import Api, Server

AUDIT = "/spe/v1/audit"
OPERATORS = ("spe:operators",)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    """A server of its own, so the log holds only this module's events."""
    server = Server(home=tmp_path_factory.mktemp("audit-home"), catalog=catalog_dir).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def operator(srv: Server) -> Api:
    return Api(srv.url, srv.token("olga-operator", groups=OPERATORS))


@pytest.fixture(scope="module")
def submitted(srv: Server) -> str:
    """A run accepted from a researcher (its event is written with the run)."""
    alice = srv.api("alice")
    run_id = alice.run_id(alice.submit("sleepy", {"seconds": 0}))
    alice.wait(run_id)
    return run_id


def bad_tokens(srv: Server, n: int) -> None:
    """``n`` failed authentications from ``n`` loopback addresses (127.0.0.2, ...): the
    audit aggregates repeats per address, reason and minute, so each one makes its row."""
    host, port = urlsplit(srv.url).hostname, urlsplit(srv.url).port
    for i in range(n):
        conn = http.client.HTTPConnection(str(host), port, timeout=30,
                                          source_address=(f"127.0.0.{i + 2}", 0))
        conn.request("GET", "/spe/v1/me", headers={"Authorization": f"Bearer not-a-jwt-{i}"})
        assert conn.getresponse().status == 401
        conn.close()


def events(api: Api, **query: Any) -> dict[str, Any]:
    resp = api.get(AUDIT, params=query)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_operator_sees_the_servers_auth_failure_and_run_submit_events(
        srv: Server, operator: Api, submitted: str) -> None:
    bad_tokens(srv, 1)
    failures = events(operator, action="auth.failure")["events"]
    assert failures
    assert {(e["actor"], e["outcome"]) for e in failures} == {("anonymous", "denied")}
    submits = events(operator, action="run.submit", actor="dev|alice")["events"]
    mine = [e for e in submits if e["target"] == submitted]
    assert len(mine) == 1
    assert mine[0]["outcome"] == "accepted"
    assert mine[0]["details"]["workflow"] == "sleepy@1.0.0"
    assert set(mine[0]) == {"id", "at", "action", "actor", "outcome", "target", "details",
                            "hash"}
    assert len(mine[0]["hash"]) == 64
    assert mine[0]["at"].endswith("Z")


def test_operator_pages_newest_first_with_signed_tokens(srv: Server, operator: Api) -> None:
    bad_tokens(srv, 5)
    everything = events(operator, action="auth.failure", page_size=500)
    ids = [e["id"] for e in everything["events"]]
    assert len(ids) >= 5
    assert ids == sorted(ids, reverse=True)
    assert everything["next_page_token"] == ""
    seen: list[int] = []
    token = ""
    while True:
        page = events(operator, action="auth.failure", page_size=2,
                      **({"page_token": token} if token else {}))
        assert len(page["events"]) <= 2
        seen += [e["id"] for e in page["events"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == ids
    first = events(operator, action="auth.failure", page_size=2)["next_page_token"]
    foreign = operator.get(AUDIT, params={"action": "run.submit", "page_token": first})
    assert foreign.status_code == 400  # a token of another listing
    forged = operator.get(AUDIT, params={"action": "auth.failure",
                                         "page_token": first[:-2] + "AA"})
    assert forged.status_code == 400


def test_operator_filters_by_target_and_time(operator: Api, submitted: str) -> None:
    [event] = events(operator, target=submitted, action="run.submit")["events"]
    since = events(operator, target=submitted, since=event["at"])["events"]
    assert event["id"] in [e["id"] for e in since]  # since is inclusive
    before = events(operator, target=submitted, until=event["at"])["events"]
    assert event["id"] not in [e["id"] for e in before]  # until is exclusive
    assert events(operator, actor="dev|nobody")["events"] == []


def test_a_researcher_gets_403_and_the_refusal_is_audited(srv: Server, operator: Api) -> None:
    alice = srv.api("alice")
    resp = alice.get(AUDIT)
    assert resp.status_code == 403
    assert resp.json()["status_code"] == 403
    refused = events(operator, action="audit.read", actor="dev|alice")["events"]
    assert refused
    assert refused[0]["outcome"] == "denied"


def test_anonymous_callers_get_401(srv: Server) -> None:
    assert srv.api().get(AUDIT).status_code == 401


@pytest.mark.parametrize("query", [{"page_size": 0}, {"page_size": 501},
                                   {"since": "yesterday"}, {"until": "2026-13-01T00:00:00Z"},
                                   {"page_token": "garbage"}])
def test_bad_queries_are_400(operator: Api, query: dict[str, Any]) -> None:
    resp = operator.get(AUDIT, params=query)
    assert resp.status_code == 400, resp.text


def test_the_chain_the_server_wrote_verifies(srv: Server, operator: Api,
                                             submitted: str) -> None:
    events(operator)  # the server is up and has written events
    env = {k: v for k, v in os.environ.items() if k != "SPE_DATABASE_URL"}
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "audit", "verify"],
                            env={**env, "SPE_HOME": str(srv.home)}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("events, chain intact")
