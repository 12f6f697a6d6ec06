"""The service in production mode (`SPE_AUTH_MODE=oidc`) against a real OIDC provider
process shaped like Life Science Login: JWT and opaque access tokens, entitlements and
passports in the token or only from userinfo, and an unreachable provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import WES, Api, Server
from tests.oidc_provider import OidcProvider

AUTHORITY = "perun.aai.lifescience-ri.eu"
GROUP = "urn:geant:lifescience-ri.eu:group:spe:proj-a"
DATASET_URL = "https://ega.example.org/datasets/EGAD0001"
DAC = "https://dac.example.org"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    idp = OidcProvider(clients={"spe": "spe-secret"}).start()
    idp.add_user("alice", entitlements=[f"{GROUP}#{AUTHORITY}"])
    idp.add_user("eve", entitlements=[f"{GROUP}#untrusted.example.org"])
    visa = {"type": "ControlledAccessGrants", "value": DATASET_URL, "source": DAC,
            "by": "dac", "asserted": int(time.time()) - 60}
    idp.add_user("vera", sub="vera-sub@lifescience-ri.eu",
                 passport=[idp.make_visa("vera-sub@lifescience-ri.eu", visa)])
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
        provider: OidcProvider) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("lslogin")
    policy = home.parent / "lslogin-policy.yaml"
    policy.write_text(yaml.safe_dump({
        "trusted_authorities": [AUTHORITY],
        "visa_issuers": {provider.issuer: [provider.issuer + "jwk"]},
        "projects": [{"id": "proj-a", "title": "A", "entitlements": [GROUP]}],
        "datasets": [{"id": "ega-study", "location": "s3://controlled/ega/",
                      "visa": {"value": DATASET_URL, "sources": [DAC]}}],
    }))
    server = Server(home=home, catalog=catalog_dir, env_extra={
        "SPE_AUTH_MODE": "oidc", "SPE_OIDC_ISSUER": provider.issuer,
        "SPE_OIDC_AUDIENCE": "spe", "SPE_OIDC_CLIENT_SECRET": "spe-secret",
        "SPE_POLICY_FILE": str(policy), "SPE_OIDC_INTROSPECTION_TTL_SECONDS": "1",
        "SPE_READINESS_CACHE_SECONDS": "0"}).start()
    yield server
    server.stop()


def _api(srv: Server, provider: OidcProvider, user: str, fmt: str = "jwt",
         in_token: bool = True) -> Api:
    provider.access_token_format = fmt  # type: ignore[assignment]
    provider.claims_in_token = in_token
    try:
        return Api(srv.url, provider.issue(user)["access_token"])
    finally:
        provider.access_token_format, provider.claims_in_token = "jwt", True


def test_a_jwt_from_the_provider_runs_a_workflow_in_the_project(
        srv: Server, provider: OidcProvider) -> None:
    api = _api(srv, provider, "alice")
    me = api.get("/spe/v1/me").json()
    assert me["sub"] == "alice-sub@lifescience-ri.eu"
    assert [p["id"] for p in me["projects"]] == ["proj-a"]
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    assert api.wait(run_id) == "COMPLETE"


def test_an_opaque_token_is_introspected(srv: Server, provider: OidcProvider) -> None:
    before = provider.count("introspect")
    api = _api(srv, provider, "alice", fmt="opaque")
    assert api.get("/spe/v1/me").json()["username"] == "alice"
    assert provider.count("introspect") > before


def test_entitlements_only_in_userinfo_are_fetched(srv: Server,
                                                   provider: OidcProvider) -> None:
    before = provider.count("userinfo")
    api = _api(srv, provider, "alice", in_token=False)
    assert [p["id"] for p in api.get("/spe/v1/me").json()["projects"]] == ["proj-a"]
    assert provider.count("userinfo") > before


def test_a_revoked_opaque_token_stops_working_after_the_cache_ttl(
        srv: Server, provider: OidcProvider) -> None:
    api = _api(srv, provider, "alice", fmt="opaque")
    assert api.get("/spe/v1/me").status_code == 200
    revoked = requests.post(provider.issuer + "revoke", data={"token": api.token},
                            auth=("spe", "spe-secret"), timeout=10)
    assert revoked.status_code == 200
    time.sleep(1.2)
    assert api.get("/spe/v1/me").status_code == 401


def test_untrusted_authority_grants_no_project(srv: Server, provider: OidcProvider) -> None:
    api = _api(srv, provider, "eve")
    assert api.get("/spe/v1/me").json()["projects"] == []
    assert api.submit("sleepy", {"seconds": 0}).status_code == 403


def test_a_passport_visa_grants_its_dataset(srv: Server, provider: OidcProvider) -> None:
    me = _api(srv, provider, "vera").get("/spe/v1/me").json()
    assert me["datasets"] == ["ega-study"]
    assert me["visas"][0]["value"] == DATASET_URL


def test_an_unreachable_provider_gives_503_not_acceptance(
        srv: Server, provider: OidcProvider) -> None:
    api = _api(srv, provider, "alice", fmt="opaque")
    provider.down = True
    try:
        resp = api.get(f"{WES}/runs")
    finally:
        provider.down = False
    assert resp.status_code == 503, resp.text
    assert "identity provider unreachable" in resp.json()["msg"]


def test_readyz_reads_the_providers_discovery_document(
        srv: Server, provider: OidcProvider) -> None:
    ready = requests.get(srv.url + "/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["identity_provider"]["ok"] is True
    provider.down = True
    try:
        down = requests.get(srv.url + "/readyz", timeout=30)
    finally:
        provider.down = False
    assert down.status_code == 503, down.text
    assert down.json()["reason"] == "identity_provider"
    assert requests.get(srv.url + "/readyz", timeout=30).status_code == 200
