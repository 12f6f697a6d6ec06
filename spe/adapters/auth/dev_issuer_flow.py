"""The development issuer's authorization code flow with PKCE, and its HTTP plumbing.

For browser pages (the reviewer page) the issuer runs the authorization code flow with
PKCE (RFC 7636, S256 only) for public clients on loopback: ``GET /authorize`` shows a form
asking for a development user name and groups (no password: this issuer trusts whoever
can reach it), ``POST /authorize`` issues a one-time code bound to the client id, the
redirect URI and the code challenge, and ``POST /token`` exchanges it for a token
(``CodeFlow``). ``Handler`` turns HTTP requests into calls of the issuer's ``handle_*``
methods and writes their ``Reply``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import socket
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from spe.adapters.auth.dev_issuer_keys import is_loopback_origin, is_loopback_redirect
from spe.adapters.policy import dev_entitlement
from spe.domain.models import JSON

AUTHORIZE_PATH = "/authorize"
TOKEN_PATH = "/token"  # noqa: S105 - a path, not a secret
CODE_LIFETIME_SECONDS = 60
ACCESS_TOKEN_LIFETIME_SECONDS = 3600
DEFAULT_GROUPS = "spe:demo"
MAX_FORM_BYTES = 16 * 1024
MAX_PENDING_CODES = 1000
USERNAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9:=_.-]{0,99}")
_MAX_GROUPS = 20
_PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 code_verifier
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url(SHA-256), no padding
_BAD_USERNAME = "invalid user name: a lower-case letter, then up to 31 of a-z 0-9 _ . -"
# the logger of the public module, as before the issuer was split into three modules
_log = logging.getLogger("spe.adapters.auth.dev_issuer")


def parse_groups(text: str) -> list[str]:
    """Groups separated by commas and/or white space; ``ValueError`` on a bad one."""
    groups = [g for g in re.split(r"[\s,]+", text) if g]
    if len(groups) > _MAX_GROUPS:
        raise ValueError(f"at most {_MAX_GROUPS} groups")
    for group in groups:
        if not _GROUP.fullmatch(group):
            raise ValueError(f"invalid group {group!r}")
    return list(dict.fromkeys(groups))


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Reply:
    """An HTTP response of the issuer (``Cache-Control: no-store`` is always added)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    """What a one-time authorization code stands for."""

    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    groups: tuple[str, ...]
    expires: float


class OAuthError(Exception):
    """An OAuth 2.0 error response: ``error`` code, description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class Minter(Protocol):
    """``DevIssuer.mint``: a signed token for a development user."""

    def __call__(self, username: str, audience: str, lifetime_seconds: int = 3600,
                 extra_claims: dict[str, Any] | None = None) -> str: ...


def json_reply(doc: JSON, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """``doc`` as a JSON response."""
    return Reply(status, json.dumps(doc).encode(), headers=dict(headers or {}))


def cors_headers(origin: str | None) -> dict[str, str]:
    """CORS for browser pages on loopback origins only."""
    if origin is None or not is_loopback_origin(origin):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def client_request(params: Mapping[str, str]) -> dict[str, str]:
    """The authorization request's parameters, validated; ``OAuthError`` otherwise."""
    redirect_uri = params.get("redirect_uri", "")
    if not is_loopback_redirect(redirect_uri):
        raise OAuthError("invalid_request", "redirect_uri must be an http URI on a "
                         "loopback host (127.0.0.1, localhost, [::1]) with a port")
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code")
    if not params.get("client_id") or len(params["client_id"]) > 200:
        raise OAuthError("invalid_request", "client_id is required")
    if params.get("code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "PKCE with code_challenge_method=S256 "
                         "is required")
    if not _CHALLENGE.fullmatch(params.get("code_challenge", "")):
        raise OAuthError("invalid_request", "code_challenge must be base64url(SHA-256)")
    if len(params.get("state", "")) > 512 or len(params.get("scope", "")) > 512:
        raise OAuthError("invalid_request", "state or scope too long")
    return {name: params.get(name, "") for name in (
        "client_id", "redirect_uri", "response_type", "code_challenge",
        "code_challenge_method", "state", "scope")}


def _checked_grant(grant: Grant | None, form: Mapping[str, str]) -> Grant:
    """``grant`` when the token request may redeem it; ``OAuthError`` otherwise."""
    if grant is None or grant.expires <= time.monotonic():
        raise OAuthError("invalid_grant", "unknown, used or expired code")
    if form.get("redirect_uri") != grant.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization "
                         "request's")
    if form.get("client_id", grant.client_id) != grant.client_id:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    verifier = form.get("code_verifier", "")
    if not _PKCE.fullmatch(verifier) or not hmac.compare_digest(s256(verifier),
                                                                 grant.challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the challenge")
    return grant


def _redirect(request: Mapping[str, str], code: str) -> Reply:
    """The 303 to the client's redirect URI with ``code`` (and ``state`` when given)."""
    params = {"code": code, **({"state": request["state"]} if request["state"] else {})}
    uri = request["redirect_uri"]
    location = uri + ("&" if urlsplit(uri).query else "?") + urlencode(params)
    return Reply(303, b"", "text/plain", {"Location": location, **_PAGE_HEADERS})


class CodeFlow:
    """The authorization code flow of the issuer at ``issuer_url``: its form, its pending
    one-time codes and the token exchange, which signs with ``mint``."""

    def __init__(self, issuer_url: str, mint: Minter) -> None:
        self.issuer_url = issuer_url
        self._mint = mint
        self._codes_lock = threading.Lock()
        self._codes: dict[str, Grant] = {}

    def authorize_form(self, query: Mapping[str, str], *, username: str = "",
                       groups: str = DEFAULT_GROUPS, problem: str = "") -> Reply:
        """``GET /authorize`` (and the form again, with ``problem``, after a bad submit)."""
        try:
            request = client_request(query)
        except OAuthError as exc:
            return error_page(exc.description)
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in request.items())
        alert = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
        body = _FORM_PAGE.substitute(
            issuer=html.escape(self.issuer_url), client=html.escape(request["client_id"]),
            redirect=html.escape(request["redirect_uri"]), hidden=hidden, alert=alert,
            username=html.escape(username), groups=html.escape(groups),
            action=html.escape(AUTHORIZE_PATH))
        return Reply(400 if problem else 200, body.encode(), "text/html; charset=utf-8",
                     dict(_PAGE_HEADERS))

    def authorize_submit(self, form: dict[str, str] | None, origin: str | None) -> Reply:
        """``POST /authorize``: a redirect with a one-time code, or the form or an error."""
        if origin is not None and origin != self.issuer_url:
            return error_page("the form must be sent from this issuer's own page", 403)
        try:
            request = client_request(form if form is not None else {})
        except OAuthError as exc:
            return error_page(exc.description)
        form = form or {}
        username, groups_text = form.get("username", "").strip(), form.get("groups", "")
        if not USERNAME.fullmatch(username):
            return self.authorize_form(form, username=username, groups=groups_text,
                                       problem=_BAD_USERNAME)
        try:
            groups = parse_groups(groups_text)
        except ValueError as exc:
            return self.authorize_form(form, username=username, groups=groups_text,
                                       problem=str(exc))
        code = self._issue(Grant(request["client_id"], request["redirect_uri"],
                                 request["code_challenge"], username, tuple(groups),
                                 time.monotonic() + CODE_LIFETIME_SECONDS))
        if code is None:
            return error_page("too many pending authorization codes; retry in a minute", 503)
        return _redirect(request, code)

    def _issue(self, grant: Grant) -> str | None:
        """A new one-time code for ``grant``; None when too many codes are pending."""
        code = secrets.token_urlsafe(32)
        with self._codes_lock:
            now = time.monotonic()
            for stale in [c for c, g in self._codes.items() if g.expires <= now]:
                del self._codes[stale]
            if len(self._codes) >= MAX_PENDING_CODES:
                return None
            self._codes[code] = grant
        return code

    def token(self, form: dict[str, str] | None, origin: str | None) -> Reply:
        """``POST /token``: the token response or an OAuth error, as JSON."""
        cors = {**cors_headers(origin), "Pragma": "no-cache"}
        try:
            return json_reply(self.exchange(form), headers=cors)
        except OAuthError as exc:
            return json_reply({"error": exc.error, "error_description": exc.description},
                              exc.status, headers=cors)

    def exchange(self, form: dict[str, str] | None) -> JSON:
        """``POST /token`` (grant_type=authorization_code): the token response; raises
        ``OAuthError`` when the code is unknown, used, expired or not bound to this
        client, redirect URI and code verifier."""
        if form is None:
            raise OAuthError("invalid_request", "expected a url-encoded form")
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code")
        with self._codes_lock:  # a code is spent by its first use, good or bad
            found = self._codes.pop(form.get("code", ""), None)
        grant = _checked_grant(found, form)
        token = self._mint(grant.username, grant.client_id, ACCESS_TOKEN_LIFETIME_SECONDS,
                           extra_claims={"eduperson_entitlement":
                                         [dev_entitlement(g) for g in grant.groups]})
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS}


# -- HTTP ------------------------------------------------------------------------------------

class Routes(Protocol):
    """What ``Handler`` calls: ``DevIssuer``'s request handlers."""

    def handle_get(self, path: str, query: Mapping[str, str],
                   origin: str | None) -> Reply: ...

    def handle_post(self, path: str, form: dict[str, str] | None,
                    origin: str | None) -> Reply: ...

    def handle_options(self, path: str, origin: str | None) -> Reply: ...


class Handler(BaseHTTPRequestHandler):
    """Parses a request, passes it to ``routes`` and writes the ``Reply``."""

    server_version = "spe-dev-issuer"

    def __init__(self, routes: Routes, *args: Any) -> None:
        self._routes = routes
        super().__init__(*args)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _form(self) -> dict[str, str] | None:
        """The url-encoded body (first value of each field), None when unreadable."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if not 0 <= length <= MAX_FORM_BYTES:
            return None
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return None
        try:
            text = self.rfile.read(length).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return _first_values(text)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = _first_values(parts.query)
        self._send(self._routes.handle_get(parts.path, query, self.headers.get("Origin")))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        self._send(self._routes.handle_post(path, form, self.headers.get("Origin")))

    def do_OPTIONS(self) -> None:
        self._send(self._routes.handle_options(urlsplit(self.path).path,
                                               self.headers.get("Origin")))

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("dev issuer: %s", format % args)


def _first_values(text: str) -> dict[str, str]:
    """A url-encoded query or form, the first value of each field (blank ones kept)."""
    values: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        values.setdefault(key, value)
    return values


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(host: str, port: int, routes: Routes) -> ThreadingHTTPServer:
    """A threading HTTP server bound to ``host``:``port`` (IPv6 when ``host`` has a colon)
    whose requests ``routes`` answers; not yet serving."""
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    return server_class((host, port), partial(Handler, routes))


# -- pages -----------------------------------------------------------------------------------

_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: browsers would then send "Origin: null" with the form
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

_STYLE = """body{font:16px/1.4 system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}
.banner{background:#b00020;color:#fff;padding:.6rem .8rem;font-weight:700;border-radius:4px}
label{display:block;margin-top:1rem;font-weight:600}input{width:100%;padding:.4rem;font:inherit}
.problem{color:#b00020;font-weight:600}.hint{color:#555;font-size:.9rem}
button{margin-top:1.2rem;padding:.5rem 1.2rem;font:inherit}"""

_FORM_PAGE = string.Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DEVELOPMENT ISSUER: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>""" + _STYLE + """</style></head>
<body>
<p class="banner" data-testid="dev-issuer-banner">DEVELOPMENT ISSUER &mdash; not for production.
Anyone on this machine can sign in as anyone.</p>
<h1>Sign in</h1>
<p class="hint">Issuer $issuer; client <code>$client</code> will receive the token at
<code>$redirect</code>.</p>
$alert
<form method="post" action="$action">
$hidden
<label for="username">Development user name</label>
<input id="username" name="username" value="$username" required autocomplete="username"
 pattern="[a-z][a-z0-9_.\\-]{0,31}">
<label for="groups">Groups (separated by commas or spaces)</label>
<input id="groups" name="groups" value="$groups">
<p class="hint">For example <code>spe:demo</code>, <code>spe:demo:role=reviewer</code>,
<code>spe:operators</code>.</p>
<button id="sign-in" type="submit">Sign in</button>
</form>
</body></html>
""")


def error_page(message: str, status: int = 400) -> Reply:
    """The HTML page telling the user why signing in failed."""
    body = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>DEVELOPMENT ISSUER: error</title></head><body>"
            "<p><strong>DEVELOPMENT ISSUER</strong></p><h1>Cannot sign in</h1>"
            f"<p role=\"alert\">{html.escape(message)}</p></body></html>")
    return Reply(status, body.encode(), "text/html; charset=utf-8", dict(_PAGE_HEADERS))
