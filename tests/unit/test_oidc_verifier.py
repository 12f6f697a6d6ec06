"""OidcVerifier against a real DevIssuer over HTTP on 127.0.0.1 (no mocks of requests)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from spe.adapters.auth.dev_issuer import (
    DISCOVERY_PATH,
    JWKS_PATH,
    KEY_FILE,
    STATE_DIR,
    DevIssuer,
    rotate_key,
)
from spe.adapters.auth.oidc import OidcVerifier
from spe.domain.errors import IdentityProviderUnavailable, Unauthenticated

AUDIENCE = "spe-api"


class FakeClock:
    """Drives the verifier's cache timers; token times still use the real clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    dev = DevIssuer(tmp_path)
    dev.start()
    yield dev
    dev.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(issuer: DevIssuer, clock: FakeClock) -> OidcVerifier:
    return OidcVerifier(issuer.issuer_url, AUDIENCE, clock=clock, http_timeout=2.0)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def issuer_key(issuer: DevIssuer) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(
        (issuer.home / STATE_DIR / KEY_FILE).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def current_kid(issuer: DevIssuer) -> str:
    return str(issuer.jwks()["keys"][0]["kid"])


def claims(issuer: DevIssuer, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": issuer.issuer_url, "sub": "dev|alice", "aud": AUDIENCE,
                            "iat": now, "nbf": now, "exp": now + 600}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign_with_issuer_key(issuer: DevIssuer, payload: dict[str, Any],
                         headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(payload, issuer_key(issuer), algorithm="RS256", headers=headers)


def foreign_token(issuer: DevIssuer, kid: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(issuer), key, algorithm="RS256", headers={"kid": kid})


def assert_rejected(verifier: OidcVerifier, token: str, message: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token)
    assert str(info.value) == message


def fetches(issuer: DevIssuer) -> tuple[int, int]:
    return issuer.request_count(DISCOVERY_PATH), issuer.request_count(JWKS_PATH)


# -- accepted tokens -------------------------------------------------------------------------


def test_valid_token_passes_and_maps_claims(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    principal = verifier.verify(issuer.mint("alice", AUDIENCE))
    assert principal.sub == "dev|alice"
    assert principal.username == "alice"
    assert principal.email == "alice@dev.invalid"
    assert principal.issuer == issuer.issuer_url
    assert principal.entitlements == () and principal.visas == ()


def test_username_falls_back_to_sub(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    token = sign_with_issuer_key(issuer, claims(issuer), {"kid": current_kid(issuer)})
    assert verifier.verify(token).username == "dev|alice"


def test_clock_skew_within_leeway_accepted(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    now = int(time.time())
    just_expired = issuer.mint("alice", AUDIENCE, extra_claims={"exp": now - 10})
    almost_valid = issuer.mint("alice", AUDIENCE, extra_claims={"nbf": now + 10, "iat": now + 10})
    assert verifier.verify(just_expired).sub == "dev|alice"
    assert verifier.verify(almost_valid).sub == "dev|alice"


def test_audience_list_containing_ours_accepted(issuer: DevIssuer,
                                                verifier: OidcVerifier) -> None:
    token = issuer.mint("alice", AUDIENCE, extra_claims={"aud": ["other", AUDIENCE]})
    assert verifier.verify(token).sub == "dev|alice"


def test_azp_fallback_accepted_when_aud_absent(issuer: DevIssuer,
                                               verifier: OidcVerifier) -> None:
    token = sign_with_issuer_key(issuer, claims(issuer, aud=None, azp=AUDIENCE),
                                 {"kid": current_kid(issuer)})
    assert verifier.verify(token).sub == "dev|alice"


def test_token_without_kid_uses_the_single_key(issuer: DevIssuer,
                                               verifier: OidcVerifier) -> None:
    token = sign_with_issuer_key(issuer, claims(issuer))
    assert "kid" not in jwt.get_unverified_header(token)
    assert verifier.verify(token).sub == "dev|alice"


def test_keys_are_cached_across_threads(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    tokens = [issuer.mint(f"user{i}", AUDIENCE) for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        subs = list(pool.map(lambda t: verifier.verify(t).sub, tokens))
    assert subs == [f"dev|user{i}" for i in range(16)]
    assert fetches(issuer) == (1, 1)


# -- rejected tokens -------------------------------------------------------------------------


def test_alg_none_rejected_before_key_lookup(issuer: DevIssuer,
                                            verifier: OidcVerifier) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": current_kid(issuer)}
    token = f"{b64json(header)}.{b64json(claims(issuer))}."
    assert_rejected(verifier, token, "algorithm not allowed")
    assert fetches(issuer) == (0, 0)


def test_hs256_signed_with_public_pem_rejected(issuer: DevIssuer,
                                               verifier: OidcVerifier) -> None:
    pem = issuer_key(issuer).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": current_kid(issuer)}
    signing_input = f"{b64json(header)}.{b64json(claims(issuer))}".encode()
    mac = hmac.HMAC(pem, hashes.SHA256())
    mac.update(signing_input)
    token = f"{signing_input.decode()}.{b64url(mac.finalize())}"
    assert_rejected(verifier, token, "algorithm not allowed")
    assert fetches(issuer) == (0, 0)


def test_expired_token_rejected(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    now = int(time.time())
    token = issuer.mint("alice", AUDIENCE,
                        extra_claims={"iat": now - 600, "nbf": now - 600, "exp": now - 120})
    assert_rejected(verifier, token, "token expired")


def test_future_nbf_rejected(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    token = issuer.mint("alice", AUDIENCE, extra_claims={"nbf": int(time.time()) + 120})
    assert_rejected(verifier, token, "token not yet valid")


@pytest.mark.parametrize("wrong", ["http://127.0.0.1:1", "{url}/", "https://evil.example"])
def test_wrong_issuer_rejected(issuer: DevIssuer, verifier: OidcVerifier, wrong: str) -> None:
    token = issuer.mint("alice", AUDIENCE,
                        extra_claims={"iss": wrong.format(url=issuer.issuer_url)})
    assert_rejected(verifier, token, "token issuer mismatch")


@pytest.mark.parametrize("aud", ["other-api", ["other-api", "third"], []])
def test_wrong_audience_rejected(issuer: DevIssuer, verifier: OidcVerifier, aud: Any) -> None:
    token = issuer.mint("alice", AUDIENCE, extra_claims={"aud": aud})
    assert_rejected(verifier, token, "token audience mismatch")


def test_missing_aud_with_foreign_azp_rejected(issuer: DevIssuer,
                                               verifier: OidcVerifier) -> None:
    token = sign_with_issuer_key(issuer, claims(issuer, aud=None, azp="other-api"),
                                 {"kid": current_kid(issuer)})
    assert_rejected(verifier, token, "token audience mismatch")


def test_missing_sub_rejected(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    token = sign_with_issuer_key(issuer, claims(issuer, sub=None), {"kid": current_kid(issuer)})
    assert_rejected(verifier, token, "token missing claim sub")


def test_missing_exp_rejected(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    token = sign_with_issuer_key(issuer, claims(issuer, exp=None), {"kid": current_kid(issuer)})
    assert_rejected(verifier, token, "token missing claim exp")


def test_tampered_payload_rejected(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    header, payload, signature = issuer.mint("alice", AUDIENCE).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "dev|root"
    assert_rejected(verifier, f"{header}.{b64json(body)}.{signature}", "token signature invalid")


def test_key_of_another_type_rejected(issuer: DevIssuer, verifier: OidcVerifier) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(issuer), ec_key, algorithm="ES256",
                       headers={"kid": current_kid(issuer)})
    assert_rejected(verifier, token, "signing key does not match algorithm")


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 20_000])
def test_malformed_token_rejected(verifier: OidcVerifier, token: str) -> None:
    assert_rejected(verifier, token, "malformed token")


def test_unknown_kid_refreshes_once_then_is_rate_limited(
        issuer: DevIssuer, verifier: OidcVerifier, clock: FakeClock) -> None:
    verifier.verify(issuer.mint("alice", AUDIENCE))
    assert fetches(issuer) == (1, 1)
    clock.advance(31)
    assert_rejected(verifier, foreign_token(issuer, "unknown-1"), "unknown signing key")
    assert fetches(issuer) == (1, 2)
    assert_rejected(verifier, foreign_token(issuer, "unknown-2"), "unknown signing key")
    assert fetches(issuer) == (1, 2)


def test_key_rotation_picked_up_after_refresh_interval(
        issuer: DevIssuer, verifier: OidcVerifier, clock: FakeClock) -> None:
    old_token = issuer.mint("alice", AUDIENCE)
    verifier.verify(old_token)
    new_kid = rotate_key(issuer.home)
    new_token = issuer.mint("bob", AUDIENCE)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert_rejected(verifier, new_token, "unknown signing key")  # refresh is rate-limited
    clock.advance(31)
    assert verifier.verify(new_token).username == "bob"
    assert_rejected(verifier, old_token, "unknown signing key")  # the old key is gone


def test_constructor_refuses_symmetric_and_none_algorithms(issuer: DevIssuer) -> None:
    for algorithms in (("HS256",), ("RS256", "none"), ()):
        with pytest.raises(ValueError, match="unsupported token algorithms"):
            OidcVerifier(issuer.issuer_url, AUDIENCE, algorithms=algorithms)


# -- identity provider failures --------------------------------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_issuer_raises_unavailable(issuer: DevIssuer) -> None:
    verifier = OidcVerifier(f"http://127.0.0.1:{closed_port()}", AUDIENCE, http_timeout=2.0)
    with pytest.raises(IdentityProviderUnavailable, match="identity provider unreachable"):
        verifier.verify(issuer.mint("alice", AUDIENCE))


Route = Callable[[str], tuple[int, bytes]]


class _FakeIdp(BaseHTTPRequestHandler):
    def __init__(self, route: Route, *args: Any) -> None:
        self._route = route
        super().__init__(*args)

    def do_GET(self) -> None:
        status, body = self._route(self.path)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_idp() -> Iterator[Callable[[Route], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(route: Route) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_FakeIdp, route))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("where", "status", "body"), [
    ("discovery", 500, b"{}"),
    ("discovery", 200, b"<html>not json</html>"),
    ("discovery", 200, b"[1, 2]"),
    ("discovery", 200, b'{"issuer": "http://elsewhere", "jwks_uri": "http://x/jwks"}'),
    ("jwks", 404, b"{}"),
    ("jwks", 200, b"not json"),
    ("jwks", 200, b'{"no": "keys"}'),
])
def test_bad_issuer_responses_raise_unavailable(
        issuer: DevIssuer, fake_idp: Callable[[Route], str],
        where: str, status: int, body: bytes) -> None:
    urls: dict[str, str] = {}

    def route(path: str) -> tuple[int, bytes]:
        if path == DISCOVERY_PATH and where == "jwks":
            doc = {"issuer": urls["base"], "jwks_uri": urls["base"] + JWKS_PATH}
            return 200, json.dumps(doc).encode()
        return status, body

    urls["base"] = fake_idp(route)
    verifier = OidcVerifier(urls["base"], AUDIENCE, http_timeout=2.0)
    with pytest.raises(IdentityProviderUnavailable, match="identity provider unreachable"):
        verifier.verify(issuer.mint("alice", AUDIENCE))


def test_jwks_redirect_is_not_followed(issuer: DevIssuer,
                                       fake_idp: Callable[[Route], str]) -> None:
    """PyJWKClient fetches the pinned jwks_uri only: a redirect elsewhere is a failure."""
    urls: dict[str, str] = {}

    def route(path: str) -> tuple[int, bytes]:
        if path == DISCOVERY_PATH:
            doc = {"issuer": urls["base"], "jwks_uri": urls["base"] + JWKS_PATH}
            return 200, json.dumps(doc).encode()
        return 302, b""

    urls["base"] = fake_idp(route)
    verifier = OidcVerifier(urls["base"], AUDIENCE, http_timeout=2.0)
    with pytest.raises(IdentityProviderUnavailable, match="identity provider unreachable"):
        verifier.verify(issuer.mint("alice", AUDIENCE))


def test_failed_jwks_fetch_counts_towards_the_refresh_limit(
        issuer: DevIssuer, fake_idp: Callable[[Route], str], clock: FakeClock) -> None:
    hits: list[str] = []
    urls: dict[str, str] = {}

    def route(path: str) -> tuple[int, bytes]:
        hits.append(path)
        if path == DISCOVERY_PATH:
            doc = {"issuer": urls["base"], "jwks_uri": urls["base"] + JWKS_PATH}
            return 200, json.dumps(doc).encode()
        if hits.count(JWKS_PATH) == 1:
            return 200, json.dumps(issuer.jwks()).encode()
        return 503, b"{}"

    urls["base"] = fake_idp(route)
    verifier = OidcVerifier(urls["base"], AUDIENCE, http_timeout=2.0, clock=clock)
    token = issuer.mint("alice", AUDIENCE, extra_claims={"iss": urls["base"]})
    assert verifier.verify(token).sub == "dev|alice"
    clock.advance(31)
    with pytest.raises(IdentityProviderUnavailable):
        verifier.verify(foreign_token(issuer, "unknown-1"))
    assert_rejected(verifier, foreign_token(issuer, "unknown-2"), "unknown signing key")
    assert hits.count(JWKS_PATH) == 2  # the failed refresh throttles the next one
    assert verifier.verify(token).sub == "dev|alice"  # the cached keys still serve
