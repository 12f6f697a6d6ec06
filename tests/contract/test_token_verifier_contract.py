"""The TokenVerifier port's contract (``spe/domain/ports.py``), against real issuers over
HTTP on 127.0.0.1 (no mocks):

- ``oidc``: ``OidcVerifier`` against the development issuer (``DevIssuer``);
- ``dev``: what ``make_verifier`` builds in dev mode (the development issuer, then the
  claims mapper), as ``spe serve`` uses it;
- ``lslogin-jwt`` and ``lslogin-opaque``: what ``make_verifier`` builds in oidc mode
  (``LsLoginVerifier``) against the test OIDC provider (``tests/oidc_provider.py``),
  with JWT and with opaque (introspected) access tokens.

``verify`` returns the caller's Principal; a bad token raises ``Unauthenticated``; an
issuer that cannot be reached raises ``IdentityProviderUnavailable``; no token is ever
logged or put in an error message."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from spe.adapters.auth.dev_issuer import DevIssuer
from spe.adapters.auth.oidc import OidcVerifier
from spe.adapters.policy import dev_policy, load_policy
from spe.app import make_verifier
from spe.config import Settings
from spe.domain.errors import IdentityProviderUnavailable, Unauthenticated
from spe.domain.models import Principal
from spe.domain.ports import TokenVerifier
from tests.oidc_provider import OidcProvider

ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "spe"
USER = "alice"


@dataclass
class Rig:
    """A verifier factory (each call: a new verifier, nothing cached) and its issuer."""

    make: Callable[[], TokenVerifier]
    issuer: str
    sub: str  # the subject of USER's tokens
    good: Callable[[], str]  # a valid token of USER
    expired: Callable[[], str]
    other_audience: Callable[[], str]  # a valid token issued for another service
    take_down: Callable[[], None]  # the issuer stops answering


def _dev_issuer_rig(make: Callable[[DevIssuer], TokenVerifier], issuer: DevIssuer) -> Rig:
    def expired() -> str:
        now = int(time.time())
        return issuer.mint(USER, AUDIENCE, extra_claims={
            "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})

    return Rig(make=lambda: make(issuer), issuer=issuer.issuer_url, sub=f"dev|{USER}",
               good=lambda: issuer.mint(USER, AUDIENCE), expired=expired,
               other_audience=lambda: issuer.mint(USER, "another-service"),
               take_down=issuer.stop)


def _oidc_rig(home: Path) -> tuple[Rig, Callable[[], None]]:
    issuer = DevIssuer(home)
    issuer.start()
    rig = _dev_issuer_rig(lambda i: OidcVerifier(i.issuer_url, AUDIENCE, http_timeout=2.0),
                          issuer)
    return rig, issuer.stop


def _dev_rig(home: Path) -> tuple[Rig, Callable[[], None]]:
    settings = Settings(home=home, auth_mode="dev", oidc_audience=AUDIENCE)
    _, issuer = make_verifier(settings, dev_policy())
    assert issuer is not None
    issuer.start()

    def make(_: DevIssuer) -> TokenVerifier:
        return make_verifier(settings, dev_policy())[0]

    rig = _dev_issuer_rig(make, issuer)
    return rig, issuer.stop


def _lslogin_rig(home: Path, token_format: str) -> tuple[Rig, Callable[[], None]]:
    provider = OidcProvider(clients={AUDIENCE: "spe-secret", "other": "other-secret"})
    provider.access_token_format = token_format  # type: ignore[assignment]
    provider.start()
    provider.add_user(USER)
    settings = Settings(home=home, auth_mode="oidc", oidc_issuer=provider.issuer,
                        oidc_audience=AUDIENCE, oidc_client_id=AUDIENCE,
                        oidc_client_secret="spe-secret", oidc_http_timeout_seconds=2.0,
                        policy_file=ROOT / "tests/fixtures/policy/two-projects.yaml")
    policy = load_policy(settings.policy_file)  # type: ignore[arg-type]

    def token(client: str = AUDIENCE, lifetime: int | None = None) -> str:
        return str(provider.issue(USER, client, lifetime=lifetime)["access_token"])

    rig = Rig(make=lambda: make_verifier(settings, policy)[0], issuer=provider.issuer,
              sub=f"{USER}-sub@lifescience-ri.eu", good=token,
              expired=lambda: token(lifetime=-3600),
              other_audience=lambda: token("other"), take_down=provider.stop)
    return rig, provider.stop


RIGS: dict[str, Callable[[Path], tuple[Rig, Callable[[], None]]]] = {
    "oidc": _oidc_rig,
    "dev": _dev_rig,
    "lslogin-jwt": lambda home: _lslogin_rig(home, "jwt"),
    "lslogin-opaque": lambda home: _lslogin_rig(home, "opaque"),
}


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    built, stop = RIGS[request.param](tmp_path / "home")
    yield built
    stop()


def b64(obj: dict[str, Any]) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(rig: Rig) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": rig.issuer, "sub": rig.sub, "aud": AUDIENCE, "iat": now, "nbf": now,
            "exp": now + 300, "preferred_username": USER}


def tampered(token: str) -> str:
    """The token with its claims changed (a JWT keeps its signature) or, when opaque, one
    character more."""
    parts = token.split(".")
    if len(parts) != 3:
        return token + "x"
    payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    payload["sub"] = "someone-else"
    return ".".join([parts[0], b64(payload), parts[2]])


def forged(rig: Rig) -> str:
    """Right claims, signed by a key the issuer never had (with the issuer's kid)."""
    kid = jwt.get_unverified_header(rig.good()).get("kid") if "." in rig.good() else None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims_for(rig), key, algorithm="RS256",
                      headers={"kid": kid} if kid else None)


BAD_TOKENS: dict[str, Callable[[Rig], str]] = {
    "empty": lambda rig: "",
    "word": lambda rig: "not-a-token",
    "three-dots": lambda rig: "a.b.c",
    "huge": lambda rig: "x" * 20_000,
    "alg-none": lambda rig: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_for(rig))}.",
    "hs256": lambda rig: jwt.encode(claims_for(rig), "a shared secret" * 3,
                                    algorithm="HS256"),
    "forged": forged,
    "tampered": lambda rig: tampered(rig.good()),
    "expired": lambda rig: rig.expired(),
    "other-audience": lambda rig: rig.other_audience(),
}


# --- the contract -------------------------------------------------------------------------


def test_a_valid_token_gives_the_callers_principal(rig: Rig) -> None:
    verifier = rig.make()
    token = rig.good()
    principal = verifier.verify(token)
    assert isinstance(principal, Principal)
    assert (principal.sub, principal.username) == (rig.sub, USER)
    assert verifier.verify(token) == principal  # again, perhaps from a cache: the same


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_a_bad_token_is_unauthenticated(rig: Rig, kind: str) -> None:
    token = BAD_TOKENS[kind](rig)
    verifier = rig.make()
    verifier.verify(rig.good())  # the verifier works, and has what it fetched cached
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    if len(token) > 8:
        assert token not in str(caught.value)


def test_an_unreachable_issuer_is_identity_provider_unavailable(rig: Rig) -> None:
    token = rig.good()
    rig.take_down()
    with pytest.raises(IdentityProviderUnavailable) as caught:
        rig.make().verify(token)
    assert token not in str(caught.value)


def test_tokens_are_never_logged(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    verifier = rig.make()
    good, bad = rig.good(), tampered(rig.good())
    verifier.verify(good)
    with pytest.raises(Unauthenticated):
        verifier.verify(bad)
    rig.take_down()
    with pytest.raises(IdentityProviderUnavailable):
        rig.make().verify(good)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for token in (good, bad):
        assert token not in logged
        assert token.split(".")[-1] not in logged  # not even a JWT's signature
