"""LsLoginVerifier against a real OIDC provider over HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from spe.adapters.auth.lslogin import LsLoginVerifier, TtlCache, token_hash
from spe.domain.errors import IdentityProviderUnavailable, Unauthenticated
from spe.domain.models import Principal
from tests.oidc_provider import OidcProvider

AUDIENCE = "spe"
ENTITLEMENT = "urn:geant:lifescience-ri.eu:group:spe:project-a#login.aai.lifescience-ri.eu"


class FakeClock:
    """Unix time that only moves when told to (drives the caches and the exp check)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingMapper:
    """The trivial mapper of the brief, remembering the claims it was given."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, claims: dict[str, Any]) -> Principal:
        self.seen.append(claims)
        return Principal(sub=claims["sub"],
                         username=claims.get("preferred_username", claims["sub"]))


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    idp = OidcProvider(clients={"spe": "spe-secret", "other": "other-secret"})
    idp.start()
    visa = idp.make_visa("alice-sub@lifescience-ri.eu", {
        "type": "ControlledAccessGrants", "value": "https://example.org/datasets/1",
        "source": "https://example.org/dac", "by": "dac", "asserted": int(time.time())})
    idp.add_user("alice", entitlements=[ENTITLEMENT], passport=[visa])
    yield idp
    idp.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mapper() -> RecordingMapper:
    return RecordingMapper()


Factory = Callable[..., LsLoginVerifier]


@pytest.fixture
def make(provider: OidcProvider, clock: FakeClock, mapper: RecordingMapper) -> Factory:
    def factory(**kw: Any) -> LsLoginVerifier:
        options: dict[str, Any] = {"mapper": mapper, "client_id": "spe",
                                   "client_secret": "spe-secret", "clock": clock,
                                   "http_timeout": 2.0, **kw}
        return LsLoginVerifier(provider.issuer, AUDIENCE, **options)
    return factory


def access_token(provider: OidcProvider, fmt: str = "jwt", **kw: Any) -> str:
    provider.access_token_format = fmt  # type: ignore[assignment]
    return str(provider.issue("alice", **kw)["access_token"])


def revoke(provider: OidcProvider, token: str) -> None:
    resp = requests.post(provider.issuer + "revoke", data={"token": token},
                         auth=("spe", "spe-secret"), timeout=5)
    assert resp.status_code == 200


def test_jwt_access_token_with_claims_maps_through_the_mapper(
        provider: OidcProvider, make: Factory, mapper: RecordingMapper) -> None:
    token = access_token(provider)
    principal = make().verify(token)
    assert principal == Principal(sub="alice-sub@lifescience-ri.eu", username="alice")
    (claims,) = mapper.seen
    assert claims["iss"] == provider.issuer and claims["aud"] == AUDIENCE
    assert claims["eduperson_entitlement"] == [ENTITLEMENT]
    assert len(claims["ga4gh_passport_v1"]) == 1
    assert provider.count("introspect") == 0 and provider.count("userinfo") == 0


def test_jwt_shaped_garbage_is_rejected_without_introspection(
        provider: OidcProvider, make: Factory) -> None:
    with pytest.raises(Unauthenticated):
        make().verify("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln")
    assert provider.count("introspect") == 0


def test_opaque_token_is_introspected_and_cached_for_the_ttl(
        provider: OidcProvider, make: Factory, clock: FakeClock,
        mapper: RecordingMapper) -> None:
    token = access_token(provider, "opaque")
    verifier = make(introspection_ttl=60)
    assert verifier.verify(token).username == "alice"
    assert verifier.verify(token).sub == "alice-sub@lifescience-ri.eu"
    assert provider.count("introspect") == 1
    clock.advance(61)
    verifier.verify(token)
    assert provider.count("introspect") == 2
    claims = mapper.seen[0]
    assert claims["client_id"] == "spe" and claims["iss"] == provider.issuer
    assert "active" not in claims and claims["eduperson_entitlement"] == [ENTITLEMENT]


def test_cached_introspection_never_outlives_the_token(
        provider: OidcProvider, make: Factory, clock: FakeClock) -> None:
    token = access_token(provider, "opaque", lifetime=30)
    verifier = make(introspection_ttl=60)
    verifier.verify(token)
    clock.advance(31)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)
    assert provider.count("introspect") == 2


@pytest.mark.parametrize("case", ["unknown", "revoked", "expired"])
def test_inactive_opaque_tokens_are_rejected(provider: OidcProvider, make: Factory,
                                             case: str) -> None:
    token = "not-a-token-we-issued"
    if case != "unknown":
        token = access_token(provider, "opaque", lifetime=-1 if case == "expired" else 300)
    if case == "revoked":
        revoke(provider, token)
    with pytest.raises(Unauthenticated, match="not active"):
        make().verify(token)


def test_revocation_is_seen_once_the_cached_answer_expires(
        provider: OidcProvider, make: Factory, clock: FakeClock) -> None:
    token = access_token(provider, "opaque")
    verifier = make(introspection_ttl=10)
    verifier.verify(token)
    revoke(provider, token)
    clock.advance(11)
    with pytest.raises(Unauthenticated, match="not active"):
        verifier.verify(token)


def test_opaque_token_of_another_client_is_rejected(provider: OidcProvider,
                                                    make: Factory) -> None:
    provider.access_token_format = "opaque"
    token = provider.issue("alice", client_id="other")["access_token"]
    with pytest.raises(Unauthenticated, match="audience"):
        make().verify(token)


@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_claims_missing_from_the_token_come_from_userinfo_once(
        provider: OidcProvider, make: Factory, mapper: RecordingMapper, fmt: str) -> None:
    provider.claims_in_token = False
    token = access_token(provider, fmt)
    verifier = make()
    assert verifier.verify(token).username == "alice"
    verifier.verify(token)
    assert provider.count("userinfo") == 1
    claims = mapper.seen[-1]
    assert claims["eduperson_entitlement"] == [ENTITLEMENT]
    assert len(claims["ga4gh_passport_v1"]) == 1
    assert claims["email"] == "alice@example.org"
    assert claims["aud"] == AUDIENCE  # the token's own claims are kept


def test_userinfo_cache_expires_after_its_ttl(provider: OidcProvider, make: Factory,
                                              clock: FakeClock) -> None:
    provider.claims_in_token = False
    token = access_token(provider)
    verifier = make(userinfo_ttl=5)
    verifier.verify(token)
    clock.advance(6)
    verifier.verify(token)
    assert provider.count("userinfo") == 2


def test_userinfo_of_another_subject_is_rejected(provider: OidcProvider,
                                                 make: Factory) -> None:
    provider.claims_in_token = False
    provider.userinfo_sub = "mallory-sub@lifescience-ri.eu"
    with pytest.raises(Unauthenticated, match="userinfo subject"):
        make().verify(access_token(provider))


def test_userinfo_refusing_the_token_rejects_it(provider: OidcProvider,
                                                make: Factory) -> None:
    provider.claims_in_token = False
    token = access_token(provider)
    revoke(provider, token)  # the JWT still verifies locally; userinfo says no
    with pytest.raises(Unauthenticated, match="rejected"):
        make().verify(token)


@pytest.mark.parametrize("how", ["close", "503", "stopped"])
@pytest.mark.parametrize("fmt", ["jwt", "opaque"])
def test_unreachable_provider_raises_unavailable(provider: OidcProvider, make: Factory,
                                                 fmt: str, how: str) -> None:
    token = access_token(provider, fmt)
    verifier = make()
    if how == "stopped":
        provider.stop()
    else:
        provider.down, provider.down_with = True, how  # type: ignore[assignment]
    with pytest.raises(IdentityProviderUnavailable, match="identity provider unreachable"):
        verifier.verify(token)


def test_provider_failing_after_discovery_raises_unavailable(
        provider: OidcProvider, make: Factory) -> None:
    verifier = make()
    verifier.verify(access_token(provider))  # discovery and keys cached
    token = access_token(provider, "opaque")
    provider.down = True
    with pytest.raises(IdentityProviderUnavailable, match="introspect"):
        verifier.verify(token)


def test_opaque_token_without_an_introspection_client_is_a_clear_error(
        provider: OidcProvider, make: Factory, caplog: pytest.LogCaptureFixture) -> None:
    token = access_token(provider, "opaque")
    with caplog.at_level(logging.WARNING), \
            pytest.raises(Unauthenticated, match="introspection client"):
        make(client_id="", client_secret="").verify(token)
    assert provider.count("introspect") == 0
    assert "no introspection client is configured" in caplog.text


def test_refused_introspection_client_is_reported_as_unavailable(
        provider: OidcProvider, make: Factory) -> None:
    token = access_token(provider, "opaque")
    with pytest.raises(IdentityProviderUnavailable, match="client id and secret"):
        make(client_secret="wrong").verify(token)


def test_tokens_never_reach_logs_or_messages(provider: OidcProvider, make: Factory,
                                             caplog: pytest.LogCaptureFixture) -> None:
    tokens: list[str] = []
    messages: list[str] = []
    caplog.set_level(logging.DEBUG)
    for fmt, claims_in_token in (("jwt", True), ("opaque", False)):
        provider.claims_in_token = claims_in_token
        token = access_token(provider, fmt)
        tokens.append(token)
        make().verify(token)
        revoke(provider, token)
        for verifier in (make(), make(client_id=""), make(client_secret="wrong")):
            try:
                verifier.verify(token)
            except (Unauthenticated, IdentityProviderUnavailable) as exc:
                messages.append(str(exc))
        provider.down = True
        try:
            make().verify(token)
        except IdentityProviderUnavailable as exc:
            messages.append(str(exc))
        provider.down = False
    assert messages and caplog.records
    texts = [*messages, *(r.getMessage() for r in caplog.records),
             *(r.exc_text or "" for r in caplog.records)]
    for token in tokens:
        assert not any(token in text for text in texts)
        assert not any(token_hash(token) in text for text in texts)


def test_ttl_cache_is_bounded_and_evicts_expired_entries_first() -> None:
    clock = FakeClock()
    cache = TtlCache(3, clock)
    cache.put("short", {"n": 0}, clock.now + 1)
    for n in range(1, 3):
        cache.put(f"k{n}", {"n": n}, clock.now + 100)
    clock.advance(2)
    cache.put("k3", {"n": 3}, clock.now + 100)
    assert cache.get("k1") == {"n": 1} and cache.get("short") is None
    cache.put("k4", {"n": 4}, clock.now + 100)
    assert len(cache) == 3 and cache.get("k1") is None  # the oldest went
    cache.put("gone", {"n": 5}, clock.now - 1)
    assert cache.get("gone") is None
