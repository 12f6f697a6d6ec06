"""With a policy naming two projects, nobody sees, cancels or reads what the policy does
not grant them, whatever the endpoint. Project A keeps runs private to their owner;
project B shares them with its members; operators see metadata everywhere, never logs.
Neither project opts in to ``logs: direct``, so nobody reads an engine log through the API
(403 where the run may be read): the log leaves through the airlock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, WES, Api, Server

POLICY = ROOT / "tests/fixtures/policy/two-projects.yaml"
GROUPS = {
    "alice": ("spe:proj-a",), "amy": ("spe:proj-a",), "bob": ("spe:proj-b",),
    "bill": ("spe:proj-b",), "both": ("spe:proj-a", "spe:proj-b"),
    "olga": ("spe:operators",), "nobody": (),
    "rita": ("spe:proj-a", "spe:proj-a:role=reviewer"),
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    server = Server(home=tmp_path_factory.mktemp("matrix"), catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(POLICY)}).start()
    yield server
    server.stop()


def as_user(srv: Server, name: str) -> Api:
    return Api(srv.url, srv.token(name, groups=GROUPS[name]))


@pytest.fixture(scope="module")
def runs(srv: Server) -> dict[str, str]:
    """alice's run in proj-a and bob's in proj-b, finished, plus a long one of each."""
    ids = {}
    for owner, key in (("alice", "a"), ("bob", "b")):
        api = as_user(srv, owner)
        ids[key] = api.run_id(api.submit("sleepy", {"seconds": 0}))
        ids[key + "_long"] = api.run_id(api.submit("sleepy", {"seconds": 120}))
        api.wait(ids[key])
    return ids


def reads(run_id: str) -> list[str]:
    return [f"{WES}/runs/{run_id}", f"{WES}/runs/{run_id}/status",
            f"{WES}/runs/{run_id}/tasks", f"{WES}/runs/{run_id}/tasks/1",
            f"/spe/v1/runs/{run_id}/outputs"]


def logs(run_id: str) -> list[str]:
    return [f"/spe/v1/runs/{run_id}/logs/stderr", f"/spe/v1/runs/{run_id}/logs/stdout"]


@pytest.mark.parametrize(("user", "run", "read", "log"), [
    ("alice", "a", 200, 403),   # owner: the engine log is output (airlock)
    ("amy", "a", 404, 404),     # same project, but proj-a keeps runs private
    ("rita", "a", 404, 404),    # a reviewer of proj-a reads outputs only through the airlock
    ("bob", "a", 404, 404),     # other project
    ("nobody", "a", 404, 404),  # no project at all
    ("olga", "a", 200, 403),    # operator: metadata, never logs
    ("bob", "b", 200, 403),     # owner
    ("bill", "b", 200, 403),    # proj-b shares runs with its members
    ("alice", "b", 404, 404),   # other project
    ("olga", "b", 200, 403),
])
def test_who_may_read_what(srv: Server, runs: dict[str, str], user: str, run: str,
                           read: int, log: int) -> None:
    api = as_user(srv, user)
    for path in reads(runs[run]):
        assert api.get(path).status_code == read, (user, path)
    for path in logs(runs[run]):
        assert api.get(path).status_code == log, (user, path)


@pytest.mark.parametrize(("user", "run", "status"), [
    ("amy", "a_long", 404), ("bob", "a_long", 404), ("nobody", "a_long", 404),
    ("bill", "b_long", 403),  # may read bob's run, may not cancel it
    ("alice", "b_long", 404),
])
def test_who_may_not_cancel(srv: Server, runs: dict[str, str], user: str, run: str,
                            status: int) -> None:
    assert as_user(srv, user).post(f"{WES}/runs/{runs[run]}/cancel").status_code == status
    assert as_user(srv, "alice").get(f"{WES}/runs/{runs['a_long']}/status").json()[
        "state"] not in ("CANCELING", "CANCELED")


def test_owner_and_operator_may_cancel(srv: Server, runs: dict[str, str]) -> None:
    assert as_user(srv, "alice").post(f"{WES}/runs/{runs['a_long']}/cancel").status_code == 200
    assert as_user(srv, "olga").post(f"{WES}/runs/{runs['b_long']}/cancel").status_code == 200
    assert as_user(srv, "bob").wait(runs["b_long"]) == "CANCELED"


def test_listings_show_exactly_what_may_be_read(srv: Server, runs: dict[str, str]) -> None:
    def listed(user: str) -> set[str]:
        body = as_user(srv, user).get(f"{WES}/runs?page_size=100").json()
        return {r["run_id"] for r in body["runs"]}

    assert listed("alice") == {runs["a"], runs["a_long"]}
    assert listed("amy") == set()
    assert listed("bill") == {runs["b"], runs["b_long"]}
    assert listed("nobody") == set()
    assert set(runs.values()) <= listed("olga")
    counts = as_user(srv, "amy").get(f"{WES}/service-info").json()["system_state_counts"]
    assert sum(counts.values()) == 0


def test_submissions_go_to_the_callers_project_only(srv: Server) -> None:
    alice = as_user(srv, "alice")
    run_id = alice.run_id(alice.submit("sleepy", {"seconds": 0}))
    assert run_id in {r["run_id"] for r in alice.get(f"{WES}/runs").json()["runs"]}
    refused = alice.submit("sleepy", {"seconds": 0}, tags={"project": "proj-b"})
    assert refused.status_code == 403 and "proj-b" in refused.json()["msg"]
    assert as_user(srv, "nobody").submit("sleepy", {"seconds": 0}).status_code == 403
    assert as_user(srv, "olga").submit("sleepy", {"seconds": 0}).status_code == 403
    both = as_user(srv, "both")
    assert both.submit("sleepy", {"seconds": 0}).status_code == 403  # must name one
    both.run_id(both.submit("sleepy", {"seconds": 0}, tags={"project": "proj-b"}))


def test_me_shows_projects_roles_and_datasets_but_never_the_token(srv: Server) -> None:
    rita = as_user(srv, "rita")
    resp = rita.get("/spe/v1/me")
    assert resp.status_code == 200
    body = resp.json()
    assert body["username"] == "rita"
    assert body["projects"] == [{"id": "proj-a", "title": "Project A (runs private to their "
                                 "owner)", "roles": ["researcher", "reviewer"]}]
    assert body["datasets"] == ["cohort-a"]
    assert rita.token not in resp.text
    olga = as_user(srv, "olga").get("/spe/v1/me").json()
    assert olga["global_roles"] == ["operator"] and olga["projects"] == []


def test_an_entitlement_from_an_untrusted_authority_grants_nothing(srv: Server) -> None:
    token = srv.token("mallory", groups=(), extra_claims={"eduperson_entitlement": [
        "urn:geant:dev.invalid:group:spe:proj-a#evil.example.org"]})
    api = Api(srv.url, token)
    assert api.get("/spe/v1/me").json()["projects"] == []
    assert api.submit("sleepy", {"seconds": 0}).status_code == 403
