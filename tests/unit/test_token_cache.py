"""Verified JWTs are cached by their hash until ``exp``: a second request with the same
token skips the signature check; an expired, refused or evicted token is checked again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spe.adapters.auth.dev_issuer import DevIssuer, rotate_key
from spe.adapters.auth.oidc import OidcVerifier
from spe.domain.errors import Unauthenticated

AUDIENCE = "spe-api"


class Now:
    def __init__(self) -> None:
        self.value = time.time()

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    dev = DevIssuer(tmp_path)
    dev.start()
    yield dev
    dev.stop()


class Counting(OidcVerifier):
    """The real verifier, counting the signature checks it makes."""

    checks = 0

    def _verify_claims(self, token: str) -> dict[str, object]:
        self.checks += 1
        return super()._verify_claims(token)


def test_a_token_seen_again_is_not_checked_again(issuer: DevIssuer) -> None:
    verifier = Counting(issuer.issuer_url, AUDIENCE)
    token = issuer.mint("alice", AUDIENCE)
    first = verifier.verify(token)
    assert verifier.verify(token) == first
    assert verifier.checks == 1


def test_the_cached_claims_end_at_exp_then_the_token_is_checked_again(
        issuer: DevIssuer) -> None:
    now = Now()
    verifier = Counting(issuer.issuer_url, AUDIENCE, now=now)
    token = issuer.mint("alice", AUDIENCE, lifetime_seconds=60)
    verifier.claims(token)
    now.value += 59
    verifier.claims(token)
    assert verifier.checks == 1
    now.value += 2  # past exp by the cache's clock: checked afresh (PyJWT's own clock)
    verifier.claims(token)
    assert verifier.checks == 2


def test_an_expired_token_is_refused_even_if_it_was_once_cached(issuer: DevIssuer) -> None:
    verifier = OidcVerifier(issuer.issuer_url, AUDIENCE, leeway_seconds=0)
    token = issuer.mint("alice", AUDIENCE, lifetime_seconds=1)
    verifier.claims(token)
    time.sleep(2.1)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.claims(token)


def test_a_refused_token_is_never_cached(issuer: DevIssuer) -> None:
    verifier = Counting(issuer.issuer_url, AUDIENCE)
    header, payload, signature = issuer.mint("alice", AUDIENCE).split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            verifier.claims(forged)
    assert verifier.checks == 2


def test_the_cache_is_bounded_and_drops_the_oldest(issuer: DevIssuer) -> None:
    verifier = Counting(issuer.issuer_url, AUDIENCE, cache_size=2)
    tokens = [issuer.mint(f"user{i}", AUDIENCE) for i in range(3)]
    for token in tokens:
        verifier.claims(token)
    verifier.claims(tokens[2])
    verifier.claims(tokens[1])
    assert verifier.checks == 3
    verifier.claims(tokens[0])  # evicted: checked again
    assert verifier.checks == 4


def test_cache_size_zero_checks_every_time(issuer: DevIssuer) -> None:
    verifier = Counting(issuer.issuer_url, AUDIENCE, cache_size=0)
    token = issuer.mint("alice", AUDIENCE)
    verifier.claims(token)
    verifier.claims(token)
    assert verifier.checks == 2


def test_new_keys_empty_the_cache_so_a_dropped_key_is_refused(issuer: DevIssuer) -> None:
    clock = [1_000_000.0]
    verifier = OidcVerifier(issuer.issuer_url, AUDIENCE, clock=lambda: clock[0])
    old_token = issuer.mint("alice", AUDIENCE)
    verifier.claims(old_token)
    rotate_key(issuer.home)
    clock[0] += 31
    verifier.claims(issuer.mint("bob", AUDIENCE))  # unknown kid: the keys are fetched again
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        verifier.claims(old_token)
