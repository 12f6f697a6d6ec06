"""The development issuer: its state on disk, its tokens and what it serves over HTTP."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from spe.adapters.auth.dev_issuer import (
    ADDRESS_FILE,
    DISCOVERY_PATH,
    JWKS_PATH,
    KEY_FILE,
    STATE_DIR,
    DevIssuer,
    public_jwk,
    rotate_key,
)
from spe.adapters.auth.oidc import OidcVerifier

AUDIENCE = "spe-api"


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    dev = DevIssuer(tmp_path)
    dev.start()
    yield dev
    dev.stop()


def b64int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


@pytest.mark.parametrize("host", ["0.0.0.0",  # noqa: S104 - the point of the test
                                  "10.1.2.3", "192.168.0.1", "::", "example.com",
                                  "localhost.example.com", ""])
def test_non_loopback_host_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DevIssuer(tmp_path, host=host)
    assert not (tmp_path / STATE_DIR).exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_loopback_hosts_accepted(tmp_path: Path, host: str) -> None:
    assert DevIssuer(tmp_path, host=host).issuer_url.startswith(f"http://{host}:")


def test_key_file_mode_is_0600_and_dir_0700(tmp_path: Path) -> None:
    DevIssuer(tmp_path)
    state = tmp_path / STATE_DIR
    assert stat.S_IMODE((state / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert sorted(p.name for p in state.iterdir()) == [ADDRESS_FILE, KEY_FILE]


def test_rotated_key_file_mode_is_0600(tmp_path: Path) -> None:
    DevIssuer(tmp_path)
    rotate_key(tmp_path)
    assert stat.S_IMODE((tmp_path / STATE_DIR / KEY_FILE).stat().st_mode) == 0o600


def test_key_is_created_once_and_reused(tmp_path: Path) -> None:
    first = DevIssuer(tmp_path).jwks()
    assert DevIssuer(tmp_path).jwks() == first


def test_port_reused_across_instances_with_same_home(tmp_path: Path) -> None:
    with DevIssuer(tmp_path) as first:
        token = first.mint("alice", AUDIENCE)
    recorded = json.loads((tmp_path / STATE_DIR / ADDRESS_FILE).read_text())
    assert recorded == {"host": "127.0.0.1", "port": first.port}
    with DevIssuer(tmp_path) as second:
        assert second.port == first.port
        assert second.issuer_url == first.issuer_url
        verifier = OidcVerifier(second.issuer_url, AUDIENCE, http_timeout=2.0)
        assert verifier.verify(token).sub == "dev|alice"


def test_explicit_port_is_recorded(tmp_path: Path) -> None:
    port = DevIssuer(tmp_path).port
    other = port + 1 if port < 65535 else port - 1
    DevIssuer(tmp_path, port=other)
    assert DevIssuer(tmp_path).port == other


def test_mint_works_without_server(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path)
    token = dev.mint("alice", AUDIENCE, lifetime_seconds=120)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == dev.jwks()["keys"][0]["kid"]
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["iss"] == dev.issuer_url
    assert body["sub"] == "dev|alice"
    assert body["preferred_username"] == "alice"
    assert body["email"] == "alice@dev.invalid"
    assert body["aud"] == AUDIENCE
    assert body["exp"] - body["iat"] == 120
    assert body["nbf"] == body["iat"]
    assert isinstance(body["jti"], str) and body["jti"]


def test_tokens_get_distinct_jti(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path)
    ids = {jwt.decode(dev.mint("alice", AUDIENCE), options={"verify_signature": False})["jti"]
           for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("username", ["", "Alice", "1alice", "al ice", "alice\n", "a" * 33,
                                      "alice|root", "ålice"])
def test_invalid_usernames_refused(tmp_path: Path, username: str) -> None:
    with pytest.raises(ValueError, match="username"):
        DevIssuer(tmp_path).mint(username, AUDIENCE)


@pytest.mark.parametrize("username", ["a", "alice", "bob.smith", "svc_1-x", "a" * 32])
def test_valid_usernames_accepted(tmp_path: Path, username: str) -> None:
    body = jwt.decode(DevIssuer(tmp_path).mint(username, AUDIENCE),
                      options={"verify_signature": False})
    assert body["sub"] == f"dev|{username}"


def test_kid_is_rfc7638_thumbprint() -> None:
    # the example key and thumbprint of RFC 7638, section 3.1
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
         "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
         "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
         "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    key = rsa.RSAPublicNumbers(e=b64int("AQAB"), n=b64int(n)).public_key()
    assert public_jwk(key)["kid"] == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_serves_discovery(issuer: DevIssuer) -> None:
    resp = requests.get(issuer.issuer_url + DISCOVERY_PATH, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    doc = resp.json()
    assert doc["issuer"] == issuer.issuer_url
    assert doc["jwks_uri"] == issuer.issuer_url + JWKS_PATH
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["spe_development_issuer"] is True


def test_serves_public_jwks_only(issuer: DevIssuer) -> None:
    keys = requests.get(issuer.issuer_url + JWKS_PATH, timeout=5).json()["keys"]
    assert len(keys) == 1
    assert set(keys[0]) == {"kty", "n", "e", "kid", "use", "alg"}
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["use"] == "sig"


@pytest.mark.parametrize("path", ["/", "/key.pem", "/dev-issuer/key.pem", "/jwks.json/x",
                                  "/.well-known/other"])
def test_other_paths_are_404(issuer: DevIssuer, path: str) -> None:
    assert requests.get(issuer.issuer_url + path, timeout=5).status_code == 404


def test_request_counts(issuer: DevIssuer) -> None:
    for _ in range(3):
        requests.get(issuer.issuer_url + JWKS_PATH, timeout=5)
    assert issuer.request_count(JWKS_PATH) == 3
    assert issuer.request_count(DISCOVERY_PATH) == 0


def test_rotation_serves_new_key_only(issuer: DevIssuer) -> None:
    old_kid = issuer.jwks()["keys"][0]["kid"]
    new_kid = rotate_key(issuer.home)
    served = requests.get(issuer.issuer_url + JWKS_PATH, timeout=5).json()["keys"]
    assert new_kid != old_kid
    assert [key["kid"] for key in served] == [new_kid]


def test_stop_then_restart_on_same_port(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path)
    dev.start()
    dev.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(dev.issuer_url + JWKS_PATH, timeout=2)
    with dev:
        assert requests.get(dev.issuer_url + JWKS_PATH, timeout=5).status_code == 200
