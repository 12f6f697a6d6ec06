"""The development issuer's authorization code flow with PKCE, over real HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from spe.adapters.auth.dev_issuer import (
    AUTHORIZE_PATH,
    DISCOVERY_PATH,
    TOKEN_PATH,
    DevIssuer,
    is_loopback_origin,
    is_loopback_redirect,
    parse_groups,
    s256,
)
from spe.adapters.auth.oidc import OidcVerifier
from spe.adapters.policy import dev_entitlement

CLIENT = "spe"
REDIRECT = "http://127.0.0.1:8123/spe/ui/"
VERIFIER = "v" * 20 + "-._~" + "0123456789abcdefghijklmnopqrstuvwxyz"  # 60 allowed chars


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    dev = DevIssuer(tmp_path)
    dev.start()
    yield dev
    dev.stop()


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "st-1", "code_challenge": s256(VERIFIER),
              "code_challenge_method": "S256"}
    params.update(overrides)
    return {k: v for k, v in params.items() if v != "<omit>"}


def post_authorize(issuer: DevIssuer, *, username: str = "rita",
                   groups: str = "spe:demo, spe:demo:role=reviewer",
                   headers: dict[str, str] | None = None,
                   overrides: dict[str, str] | None = None) -> requests.Response:
    form = {**authorize_params(**(overrides or {})), "username": username, "groups": groups}
    return requests.post(issuer.issuer_url + AUTHORIZE_PATH, data=form, headers=headers,
                         allow_redirects=False, timeout=10)


def get_code(issuer: DevIssuer, username: str = "rita",
             groups: str = "spe:demo, spe:demo:role=reviewer") -> str:
    resp = post_authorize(issuer, username=username, groups=groups)
    assert resp.status_code == 303, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def exchange(issuer: DevIssuer, code: str, *, headers: dict[str, str] | None = None,
             **overrides: str) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": CLIENT, "code_verifier": VERIFIER, **overrides}
    return requests.post(issuer.issuer_url + TOKEN_PATH, data=form, headers=headers,
                         timeout=10)


def test_discovery_names_the_endpoints(issuer: DevIssuer) -> None:
    doc = requests.get(issuer.issuer_url + DISCOVERY_PATH, timeout=10).json()
    assert doc["authorization_endpoint"] == issuer.issuer_url + AUTHORIZE_PATH
    assert doc["token_endpoint"] == issuer.issuer_url + TOKEN_PATH
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "code" in doc["response_types_supported"]


def test_authorize_form_is_labelled_and_escapes_parameters(issuer: DevIssuer) -> None:
    resp = requests.get(issuer.issuer_url + AUTHORIZE_PATH,
                        params=authorize_params(state='"><script>x</script>'), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "DEVELOPMENT ISSUER" in resp.text
    assert 'value="spe:demo"' in resp.text  # the groups field's default
    assert '<label for="username">' in resp.text
    assert "<script>" not in resp.text
    assert "&lt;script&gt;" in resp.text


def test_full_flow_gives_a_token_the_verifier_accepts(issuer: DevIssuer) -> None:
    code = get_code(issuer)
    resp = exchange(issuer, code)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert resp.headers["Cache-Control"] == "no-store"
    claims = OidcVerifier(issuer.issuer_url, CLIENT).claims(body["access_token"])
    assert claims["preferred_username"] == "rita"
    assert claims["aud"] == CLIENT
    assert claims["eduperson_entitlement"] == [dev_entitlement("spe:demo"),
                                               dev_entitlement("spe:demo:role=reviewer")]


def test_pkce_mismatch_refused(issuer: DevIssuer) -> None:
    code = get_code(issuer)
    resp = exchange(issuer, code, code_verifier="w" * 60)
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    # the failed attempt spent the code: the right verifier no longer helps
    assert exchange(issuer, code).status_code == 400


def test_missing_verifier_refused(issuer: DevIssuer) -> None:
    code = get_code(issuer)
    resp = exchange(issuer, code, code_verifier="")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_code_reuse_refused(issuer: DevIssuer) -> None:
    code = get_code(issuer)
    assert exchange(issuer, code).status_code == 200
    again = exchange(issuer, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_expired_code_refused(issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    code = get_code(issuer)
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 61)
    assert exchange(issuer, code).json()["error"] == "invalid_grant"


def test_redirect_uri_and_client_must_match(issuer: DevIssuer) -> None:
    code = get_code(issuer)
    assert exchange(issuer, code, redirect_uri="http://127.0.0.1:8123/other/"
                    ).status_code == 400
    code = get_code(issuer)
    assert exchange(issuer, code, client_id="someone-else").status_code == 400


def test_only_authorization_code_grant(issuer: DevIssuer) -> None:
    resp = exchange(issuer, get_code(issuer), grant_type="client_credentials")
    assert resp.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("redirect", [
    "https://evil.example/cb", "http://evil.example:8123/spe/ui/",
    "http://127.0.0.1.evil.example:80/", "http://user@127.0.0.1:8123/",
    "http://127.0.0.1/no-port", "http://10.0.0.1:8123/", "javascript:alert(1)",
    "http://127.0.0.1:8123/#frag", "",
])
def test_non_loopback_redirect_refused(issuer: DevIssuer, redirect: str) -> None:
    resp = requests.get(issuer.issuer_url + AUTHORIZE_PATH,
                        params=authorize_params(redirect_uri=redirect), timeout=10)
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    post = post_authorize(issuer, overrides={"redirect_uri": redirect})
    assert post.status_code == 400
    assert "Location" not in post.headers


@pytest.mark.parametrize("username", ["", "Rita", "1rita", "rita smith", "a" * 33,
                                      "rita<script>", "../etc"])
def test_bad_user_name_refused(issuer: DevIssuer, username: str) -> None:
    resp = post_authorize(issuer, username=username)
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert "invalid user name" in resp.text
    assert "<script>" not in resp.text


def test_bad_group_refused(issuer: DevIssuer) -> None:
    resp = post_authorize(issuer, groups="spe:demo <b>")
    assert resp.status_code == 400
    assert "Location" not in resp.headers


@pytest.mark.parametrize("overrides", [
    {"code_challenge_method": "plain"}, {"code_challenge_method": "<omit>"},
    {"code_challenge": "<omit>"}, {"code_challenge": "short"},
    {"response_type": "token"}, {"client_id": ""},
])
def test_pkce_s256_and_code_response_required(issuer: DevIssuer,
                                              overrides: dict[str, str]) -> None:
    resp = post_authorize(issuer, overrides=overrides)
    assert resp.status_code == 400
    assert "Location" not in resp.headers


def test_cross_site_form_post_refused(issuer: DevIssuer) -> None:
    resp = post_authorize(issuer, headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403
    ok = post_authorize(issuer, headers={"Origin": issuer.issuer_url})
    assert ok.status_code == 303


def test_cors_only_for_loopback_origins(issuer: DevIssuer) -> None:
    page = "http://127.0.0.1:8123"
    resp = exchange(issuer, get_code(issuer), headers={"Origin": page})
    assert resp.headers["Access-Control-Allow-Origin"] == page
    resp = exchange(issuer, get_code(issuer), headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    pre = requests.options(issuer.issuer_url + TOKEN_PATH, timeout=10,
                           headers={"Origin": page, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == page
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    disco = requests.get(issuer.issuer_url + DISCOVERY_PATH, headers={"Origin": page},
                         timeout=10)
    assert disco.headers["Access-Control-Allow-Origin"] == page


def test_code_is_long_and_random(issuer: DevIssuer) -> None:
    codes = {get_code(issuer) for _ in range(3)}
    assert len(codes) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{40,}", c) for c in codes)


@pytest.mark.parametrize(("origin", "ok"), [
    ("http://127.0.0.1:8080", True), ("http://localhost:1", True), ("http://[::1]:9", True),
    ("http://127.0.0.1", False), ("https://127.0.0.1:8080", False),
    ("http://127.0.0.1:8080/", False), ("http://localhost.evil:80", False), ("null", False),
])
def test_loopback_origin(origin: str, ok: bool) -> None:
    assert is_loopback_origin(origin) is ok


def test_loopback_redirect_keeps_query() -> None:
    assert is_loopback_redirect("http://localhost:5000/cb?x=1")
    assert not is_loopback_redirect("http://localhost:5000")


def test_groups_split_on_commas_and_spaces() -> None:
    assert parse_groups("spe:demo,spe:demo:role=reviewer") == ["spe:demo",
                                                               "spe:demo:role=reviewer"]
    assert parse_groups(" spe:demo  spe:operators,, ") == ["spe:demo", "spe:operators"]
    assert parse_groups("") == []
    with pytest.raises(ValueError, match="invalid group"):
        parse_groups("spe:demo#x")


def test_token_decodes_without_verification_to_the_user(issuer: DevIssuer) -> None:
    token = exchange(issuer, get_code(issuer, username="rex", groups="spe:demo")
                     ).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "dev|rex"
    assert claims["eduperson_entitlement"] == [dev_entitlement("spe:demo")]
