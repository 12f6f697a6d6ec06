"""Issue 11, finding 7: losing project membership removes access. A token that no longer
carries the project reads none of the owner's old runs, logs or release requests, requests
no release and downloads nothing (404, as for an unknown id), and listings and counts show
none of them. Checked with the development issuer and with the LS Login verifier."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.helpers import ROOT, WES, Api, Server
from tests.oidc_provider import OidcProvider

RR = "/spe/v1/release-requests"
FILES = ["results/done.txt", "results/first.txt"]
AUTHORITY = "perun.aai.lifescience-ri.eu"
LS_GROUP = "urn:geant:lifescience-ri.eu:group:spe:proj-a"
KEY = {"Idempotency-Key": "ex-member-run-1"}


def released_request(owner: Api, reviewers: list[Api]) -> tuple[str, str]:
    """A completed run of ``owner`` and a release request of it, approved by
    ``reviewers`` and released; the owner can download it while a member."""
    run_id = owner.run_id(owner.submit("sleepy", {"seconds": 0}, headers=KEY))
    assert owner.wait(run_id) == "COMPLETE"
    resp = owner.post(RR, json={"run_id": run_id, "files": FILES,
                                "justification": "Aggregate counts for the paper only."})
    assert resp.status_code == 201, resp.text
    req_id = resp.json()["id"]
    for reviewer in reviewers:
        for path in FILES:
            vote = reviewer.post(f"{RR}/{req_id}/votes", json={
                "path": path, "decision": "approve", "reason": "Aggregates only."})
            assert vote.status_code == 200, vote.text
    deadline = time.monotonic() + 30
    while owner.get(f"{RR}/{req_id}").json()["state"] != "RELEASED":
        assert time.monotonic() < deadline, "the request was not released"
        time.sleep(0.1)
    download = owner.get(f"{RR}/{req_id}/download", params={"path": FILES[0]})
    assert download.status_code == 200
    return run_id, req_id


def assert_sees_nothing(ex: Api, run_id: str, req_id: str) -> None:
    """Everything the ex-member once owned is gone for them: 404 and absent from lists."""
    for path in (f"{WES}/runs/{run_id}", f"{WES}/runs/{run_id}/status",
                 f"{WES}/runs/{run_id}/tasks", f"/spe/v1/runs/{run_id}/logs/stderr",
                 f"/spe/v1/runs/{run_id}/outputs",
                 f"{RR}/{req_id}", f"{RR}/{req_id}/crate"):
        resp = ex.get(path)
        assert resp.status_code == 404, (path, resp.status_code, resp.text)
    download = ex.get(f"{RR}/{req_id}/download", params={"path": FILES[0]})
    assert download.status_code == 404, download.text
    assert ex.post(f"{WES}/runs/{run_id}/cancel").status_code == 404
    purge = requests.delete(f"{ex.base}/spe/v1/runs/{run_id}", timeout=30,
                            headers={"Authorization": f"Bearer {ex.token}"})
    assert purge.status_code == 404, purge.text
    again = ex.post(RR, json={"run_id": run_id, "files": FILES,
                              "justification": "Asking again after leaving the project."})
    assert again.status_code == 404, again.text
    replay = ex.submit("sleepy", {"seconds": 0}, headers=KEY)  # the key names the old run
    assert replay.status_code == 404, replay.text
    runs = ex.get(f"{WES}/runs").json()["runs"]
    assert run_id not in {r["run_id"] for r in runs}
    counts = ex.get(f"{WES}/service-info").json()["system_state_counts"]
    assert sum(counts.values()) == 0, counts
    for role in ("", "requester"):
        listed = ex.get(RR, params={"role": role} if role else {}).json()
        assert req_id not in {r["id"] for r in listed["requests"]}, listed


# -- the development issuer --------------------------------------------------------------

GROUPS = {
    "alice": ("spe:proj-a",),
    "rita": ("spe:proj-a", "spe:proj-a:role=reviewer"),
    "rex": ("spe:proj-a", "spe:proj-a:role=reviewer"),
}


@pytest.fixture(scope="module")
def dev_srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ex-member")
    policy = ROOT / "tests/fixtures/policy/two-projects.yaml"
    server = Server(home=home, catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(policy)}).start()
    yield server
    server.stop()


def test_ex_member_loses_access_to_runs_and_releases(dev_srv: Server) -> None:
    def as_user(name: str, groups: tuple[str, ...] | None = None) -> Api:
        return Api(dev_srv.url, dev_srv.token(name, groups=GROUPS[name] if groups is None
                                              else groups))

    run_id, req_id = released_request(as_user("alice"), [as_user("rita"), as_user("rex")])
    # alice leaves proj-a (her new token has another project, then none at all)
    for groups in (("spe:proj-b",), ()):
        assert_sees_nothing(as_user("alice", groups), run_id, req_id)
    # the reviewers, still members, keep their view of the request
    assert as_user("rita").get(f"{RR}/{req_id}").status_code == 200


# -- the LS Login verifier (production mode) ---------------------------------------------

@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    idp = OidcProvider(clients={"spe": "spe-secret"}).start()
    idp.add_user("lena", entitlements=[f"{LS_GROUP}#{AUTHORITY}"])
    for name in ("rita", "rex"):
        idp.add_user(name, entitlements=[f"{LS_GROUP}#{AUTHORITY}",
                                         f"{LS_GROUP}:role=reviewer#{AUTHORITY}"])
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def ls_srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
           provider: OidcProvider) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ex-member-lslogin")
    policy = home.parent / "ex-member-lslogin-policy.yaml"
    policy.write_text(yaml.safe_dump({
        "trusted_authorities": [AUTHORITY],
        "projects": [{"id": "proj-a", "title": "A", "entitlements": [LS_GROUP]}],
        "roles": [{"role": "reviewer", "project": "proj-a",
                   "entitlement": f"{LS_GROUP}:role=reviewer"}],
    }))
    server = Server(home=home, catalog=catalog_dir, env_extra={
        "SPE_AUTH_MODE": "oidc", "SPE_OIDC_ISSUER": provider.issuer,
        "SPE_OIDC_AUDIENCE": "spe", "SPE_OIDC_CLIENT_SECRET": "spe-secret",
        "SPE_POLICY_FILE": str(policy)}).start()
    yield server
    server.stop()


def test_ex_member_loses_access_with_ls_login(ls_srv: Server, provider: OidcProvider) -> None:
    token: Callable[[str], Any] = lambda user: provider.issue(user)["access_token"]  # noqa: E731
    lena = Api(ls_srv.url, token("lena"))
    run_id, req_id = released_request(lena, [Api(ls_srv.url, token(n)) for n in ("rita", "rex")])
    provider.add_user("lena", entitlements=[])  # removed from the group at the IdP
    ex = Api(ls_srv.url, token("lena"))
    assert ex.get("/spe/v1/me").json()["projects"] == []
    assert_sees_nothing(ex, run_id, req_id)
