"""The development OIDC issuer of the embedded default: a loopback-only HTTP server that
publishes a discovery document and a JWKS, and a ``mint`` that signs tokens with its key.

For browser pages (the reviewer page) it also runs the authorization code flow with PKCE
(RFC 7636, S256 only) for public clients on loopback: ``GET /authorize`` shows a form
asking for a development user name and groups (no password: this issuer trusts whoever
can reach it), ``POST /authorize`` issues a one-time code bound to the client id, the
redirect URI and the code challenge, and ``POST /token`` exchanges it for a token.

State lives in ``<home>/dev-issuer/``: ``key.pem`` (RSA 2048, mode 0600) and
``issuer.json`` (the host and port, reused so tokens stay valid across restarts).
Never use it outside development: anyone who can read ``key.pem`` can mint any identity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import re
import secrets
import socket
import string
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from spe.adapters.policy import dev_entitlement
from spe.domain.models import JSON

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks.json"
AUTHORIZE_PATH = "/authorize"
TOKEN_PATH = "/token"  # noqa: S105 - a path, not a secret
CODE_LIFETIME_SECONDS = 60
ACCESS_TOKEN_LIFETIME_SECONDS = 3600
DEFAULT_GROUPS = "spe:demo"
MAX_FORM_BYTES = 16 * 1024
MAX_PENDING_CODES = 1000
STATE_DIR = "dev-issuer"
KEY_FILE = "key.pem"
ADDRESS_FILE = "issuer.json"
_USERNAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9:=_.-]{0,99}")
_MAX_GROUPS = 20
_PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 code_verifier
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url(SHA-256), no padding
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_log = logging.getLogger(__name__)


def _check_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the development issuer listens on loopback only, not {host!r}")


def is_loopback_origin(origin: str) -> bool:
    """``http://127.0.0.1:<port>``, ``http://localhost:<port>`` or ``http://[::1]:<port>``
    (exactly an origin: no path, user info, query or fragment)."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    return (parts.scheme == "http" and host in _LOOPBACK_HOSTS and port is not None
            and not parts.path and not parts.query and not parts.fragment
            and f"http://{host}:{port}" == origin)


def is_loopback_redirect(uri: str) -> bool:
    """An http redirect URI on a loopback host with an explicit port, without fragment."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return (is_loopback_origin(f"{parts.scheme}://{parts.netloc}")
            and parts.path.startswith("/") and not parts.fragment and "#" not in uri)


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


def _state_dir(home: Path) -> Path:
    state = home / STATE_DIR
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.chmod(0o700)
    return state


def _write_file(path: Path, data: bytes, *, replace: bool, mode: int = 0o600) -> bool:
    """Writes ``data`` atomically with ``mode``; without ``replace`` an existing file wins
    (returns False), so two processes creating the key at once agree on one key."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with tmp.open("xb") as fh:
            tmp.chmod(mode)
            fh.write(data)
        if replace:
            tmp.replace(path)
            return True
        try:
            path.hardlink_to(tmp)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _new_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def public_jwk(key: rsa.RSAPublicKey) -> JSON:
    """The public JWK, with ``kid`` = its RFC 7638 thumbprint (SHA-256, base64url)."""
    jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    members = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**members, "kid": kid, "use": "sig", "alg": "RS256"}


def rotate_key(home: Path) -> str:
    """Replaces the signing key (the JWKS then serves the new key only); returns its kid."""
    path = _state_dir(home) / KEY_FILE
    _write_file(path, _new_key_pem(), replace=True)
    return str(public_jwk(_load_key(path).public_key())["kid"])


def _recorded_port(path: Path) -> int | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    port = data.get("port") if isinstance(data, dict) else None
    return port if isinstance(port, int) and 0 < port < 65536 else None


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Grant:
    """What a one-time authorization code stands for."""

    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    groups: tuple[str, ...]
    expires: float


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def _json_reply(doc: JSON, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(doc).encode(), headers=dict(headers or {}))


class _Handler(BaseHTTPRequestHandler):
    server_version = "spe-dev-issuer"

    def __init__(self, issuer: DevIssuer, *args: Any) -> None:
        self._issuer = issuer
        super().__init__(*args)

    def _send(self, reply: _Reply) -> None:
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
        form: dict[str, str] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            form.setdefault(key, value)
        return form

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(key, value)
        self._send(self._issuer.handle_get(parts.path, query, self.headers.get("Origin")))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        self._send(self._issuer.handle_post(path, form, self.headers.get("Origin")))

    def do_OPTIONS(self) -> None:
        self._send(self._issuer.handle_options(urlsplit(self.path).path,
                                               self.headers.get("Origin")))

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("dev issuer: %s", format % args)


class DevIssuer:
    """A development issuer rooted at ``home``; ``mint`` works without ``start``."""

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        _check_loopback(host)
        if not 0 <= port < 65536:
            raise ValueError(f"invalid port {port}")
        self.home = home
        self.host = host
        self._dir = _state_dir(home)
        if not (self._dir / KEY_FILE).exists():
            _write_file(self._dir / KEY_FILE, _new_key_pem(), replace=False)
        self.port = port or _recorded_port(self._dir / ADDRESS_FILE) or _free_port(host)
        record = json.dumps({"host": host, "port": self.port}).encode()
        _write_file(self._dir / ADDRESS_FILE, record, replace=True, mode=0o644)
        url_host = f"[{host}]" if ":" in host else host
        self.issuer_url = f"http://{url_host}:{self.port}"
        self._key_lock = threading.Lock()
        self._key_cache: tuple[tuple[int, int], rsa.RSAPrivateKey, JSON] | None = None
        self._count_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._codes_lock = threading.Lock()
        self._codes: dict[str, _Grant] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- tokens ----------------------------------------------------------------------------

    def mint(self, username: str, audience: str, lifetime_seconds: int = 3600,
             extra_claims: dict[str, Any] | None = None) -> str:
        """A signed RS256 token for ``username``; ``extra_claims`` add or override claims."""
        if not _USERNAME.fullmatch(username):
            raise ValueError(f"invalid development username {username!r}")
        if not audience:
            raise ValueError("audience is required")
        if lifetime_seconds <= 0:
            raise ValueError("lifetime_seconds must be positive")
        key, jwk = self._signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url, "sub": f"dev|{username}",
            "preferred_username": username, "email": f"{username}@dev.invalid",
            "aud": audience, "iat": now, "nbf": now, "exp": now + lifetime_seconds,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(extra_claims or {})
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": jwk["kid"]})

    def _signing_key(self) -> tuple[rsa.RSAPrivateKey, JSON]:
        """The current key, re-read when ``key.pem`` changed (e.g. after ``rotate_key``)."""
        path = self._dir / KEY_FILE
        with self._key_lock:
            stat = path.stat()
            signature = (stat.st_ino, stat.st_mtime_ns)
            if self._key_cache is None or self._key_cache[0] != signature:
                key = _load_key(path)
                self._key_cache = (signature, key, public_jwk(key.public_key()))
            return self._key_cache[1], self._key_cache[2]

    # -- server ----------------------------------------------------------------------------

    def discovery(self) -> JSON:
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.issuer_url + JWKS_PATH,
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_endpoint": self.issuer_url + AUTHORIZE_PATH,
            "token_endpoint": self.issuer_url + TOKEN_PATH,
            "response_types_supported": ["code", "id_token"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "subject_types_supported": ["public"],
            "spe_development_issuer": True,
        }

    def jwks(self) -> JSON:
        return {"keys": [self._signing_key()[1]]}

    def request_count(self, path: str) -> int:
        """How many GET requests for ``path`` the server has answered (for tests)."""
        with self._count_lock:
            return self._counts[path]

    def _serve(self, path: str) -> JSON | None:
        with self._count_lock:
            self._counts[path] += 1
        if path == DISCOVERY_PATH:
            return self.discovery()
        if path == JWKS_PATH:
            return self.jwks()
        return None

    # -- authorization code flow with PKCE ---------------------------------------------------

    @staticmethod
    def _cors(origin: str | None) -> dict[str, str]:
        """CORS for browser pages on loopback origins only."""
        if origin is None or not is_loopback_origin(origin):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def handle_get(self, path: str, query: Mapping[str, str], origin: str | None) -> _Reply:
        if path == AUTHORIZE_PATH:
            return self._authorize_form(query)
        doc = self._serve(path)
        if doc is None:
            return _json_reply({"error": "not_found"}, 404)
        return _json_reply(doc, headers=self._cors(origin))

    def handle_options(self, path: str, origin: str | None) -> _Reply:
        if path not in (TOKEN_PATH, DISCOVERY_PATH, JWKS_PATH):
            return _json_reply({"error": "not_found"}, 404)
        cors = self._cors(origin)
        if cors:
            cors.update({"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                         "Access-Control-Allow-Headers": "Content-Type",
                         "Access-Control-Max-Age": "600"})
        return _Reply(204, headers=cors, content_type="text/plain")

    def handle_post(self, path: str, form: dict[str, str] | None,
                    origin: str | None) -> _Reply:
        if path == AUTHORIZE_PATH:
            return self._authorize_submit(form, origin)
        if path == TOKEN_PATH:
            cors = {**self._cors(origin), "Pragma": "no-cache"}
            try:
                return _json_reply(self.exchange(form), headers=cors)
            except _OAuthError as exc:
                return _json_reply({"error": exc.error, "error_description": exc.description},
                                   exc.status, headers=cors)
        return _json_reply({"error": "not_found"}, 404)

    @staticmethod
    def _client_request(params: Mapping[str, str]) -> dict[str, str]:
        """The authorization request's parameters, validated; ``_OAuthError`` otherwise."""
        redirect_uri = params.get("redirect_uri", "")
        if not is_loopback_redirect(redirect_uri):
            raise _OAuthError("invalid_request", "redirect_uri must be an http URI on a "
                              "loopback host (127.0.0.1, localhost, [::1]) with a port")
        if params.get("response_type") != "code":
            raise _OAuthError("unsupported_response_type", "only response_type=code")
        if not params.get("client_id") or len(params["client_id"]) > 200:
            raise _OAuthError("invalid_request", "client_id is required")
        if params.get("code_challenge_method") != "S256":
            raise _OAuthError("invalid_request", "PKCE with code_challenge_method=S256 "
                              "is required")
        if not _CHALLENGE.fullmatch(params.get("code_challenge", "")):
            raise _OAuthError("invalid_request", "code_challenge must be base64url(SHA-256)")
        if len(params.get("state", "")) > 512 or len(params.get("scope", "")) > 512:
            raise _OAuthError("invalid_request", "state or scope too long")
        return {name: params.get(name, "") for name in (
            "client_id", "redirect_uri", "response_type", "code_challenge",
            "code_challenge_method", "state", "scope")}

    def _authorize_form(self, query: Mapping[str, str], *, username: str = "",
                        groups: str = DEFAULT_GROUPS, problem: str = "") -> _Reply:
        try:
            request = self._client_request(query)
        except _OAuthError as exc:
            return _error_page(exc.description)
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in request.items())
        alert = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
        body = _FORM_PAGE.substitute(
            issuer=html.escape(self.issuer_url), client=html.escape(request["client_id"]),
            redirect=html.escape(request["redirect_uri"]), hidden=hidden, alert=alert,
            username=html.escape(username), groups=html.escape(groups),
            action=html.escape(AUTHORIZE_PATH))
        return _Reply(400 if problem else 200, body.encode(), "text/html; charset=utf-8",
                      dict(_PAGE_HEADERS))

    def _authorize_submit(self, form: dict[str, str] | None, origin: str | None) -> _Reply:
        if origin is not None and origin != self.issuer_url:
            return _error_page("the form must be sent from this issuer's own page", 403)
        try:
            request = self._client_request(form if form is not None else {})
        except _OAuthError as exc:
            return _error_page(exc.description)
        form = form or {}
        username, groups_text = form.get("username", "").strip(), form.get("groups", "")
        if not _USERNAME.fullmatch(username):
            return self._authorize_form(
                form, username=username, groups=groups_text,
                problem="invalid user name: a lower-case letter, then up to 31 of a-z 0-9 _ . -")
        try:
            groups = parse_groups(groups_text)
        except ValueError as exc:
            return self._authorize_form(form, username=username, groups=groups_text,
                                        problem=str(exc))
        code = secrets.token_urlsafe(32)
        grant = _Grant(request["client_id"], request["redirect_uri"],
                       request["code_challenge"], username, tuple(groups),
                       time.monotonic() + CODE_LIFETIME_SECONDS)
        with self._codes_lock:
            now = time.monotonic()
            for stale in [c for c, g in self._codes.items() if g.expires <= now]:
                del self._codes[stale]
            if len(self._codes) >= MAX_PENDING_CODES:
                return _error_page("too many pending authorization codes; retry in a minute",
                                   503)
            self._codes[code] = grant
        params = {"code": code, **({"state": request["state"]} if request["state"] else {})}
        uri = request["redirect_uri"]
        location = uri + ("&" if urlsplit(uri).query else "?") + urlencode(params)
        return _Reply(303, b"", "text/plain", {"Location": location, **_PAGE_HEADERS})

    def exchange(self, form: dict[str, str] | None) -> JSON:
        """``POST /token`` (grant_type=authorization_code): the token response; raises
        ``_OAuthError`` when the code is unknown, used, expired or not bound to this
        client, redirect URI and code verifier."""
        if form is None:
            raise _OAuthError("invalid_request", "expected a url-encoded form")
        if form.get("grant_type") != "authorization_code":
            raise _OAuthError("unsupported_grant_type", "only authorization_code")
        with self._codes_lock:  # a code is spent by its first use, good or bad
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires <= time.monotonic():
            raise _OAuthError("invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise _OAuthError("invalid_grant", "redirect_uri differs from the authorization "
                              "request's")
        if form.get("client_id", grant.client_id) != grant.client_id:
            raise _OAuthError("invalid_grant", "the code was issued to another client")
        verifier = form.get("code_verifier", "")
        if not _PKCE.fullmatch(verifier) or not hmac.compare_digest(s256(verifier),
                                                                     grant.challenge):
            raise _OAuthError("invalid_grant", "code_verifier does not match the challenge")
        token = self.mint(grant.username, grant.client_id, ACCESS_TOKEN_LIFETIME_SECONDS,
                          extra_claims={"eduperson_entitlement":
                                        [dev_entitlement(g) for g in grant.groups]})
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS}

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the development issuer is already running")
        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        self._server = server_class((self.host, self.port), partial(_Handler, self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="spe-dev-issuer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> DevIssuer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


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


def _error_page(message: str, status: int = 400) -> _Reply:
    body = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>DEVELOPMENT ISSUER: error</title></head><body>"
            "<p><strong>DEVELOPMENT ISSUER</strong></p><h1>Cannot sign in</h1>"
            f"<p role=\"alert\">{html.escape(message)}</p></body></html>")
    return _Reply(status, body.encode(), "text/html; charset=utf-8", dict(_PAGE_HEADERS))
