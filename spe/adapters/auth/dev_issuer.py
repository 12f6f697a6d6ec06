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

This module holds ``DevIssuer``, the public face; the key and address files live in
``dev_issuer_keys`` and the authorization code flow and HTTP handler in
``dev_issuer_flow``. Their public names are re-exported here.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from spe.adapters.auth.dev_issuer_flow import (
    ACCESS_TOKEN_LIFETIME_SECONDS,
    AUTHORIZE_PATH,
    CODE_LIFETIME_SECONDS,
    DEFAULT_GROUPS,
    MAX_FORM_BYTES,
    MAX_PENDING_CODES,
    TOKEN_PATH,
    USERNAME,
    CodeFlow,
    Reply,
    cors_headers,
    json_reply,
    make_server,
    parse_groups,
    s256,
)
from spe.adapters.auth.dev_issuer_keys import (
    ADDRESS_FILE,
    KEY_FILE,
    STATE_DIR,
    check_loopback,
    free_port,
    is_loopback_origin,
    is_loopback_redirect,
    load_key,
    new_key_pem,
    public_jwk,
    recorded_port,
    rotate_key,
    state_dir,
    write_file,
)
from spe.domain.models import JSON

__all__ = [
    "ACCESS_TOKEN_LIFETIME_SECONDS", "ADDRESS_FILE", "AUTHORIZE_PATH", "CODE_LIFETIME_SECONDS",
    "DEFAULT_GROUPS", "DISCOVERY_PATH", "JWKS_PATH", "KEY_FILE", "MAX_FORM_BYTES",
    "MAX_PENDING_CODES", "STATE_DIR", "TOKEN_PATH", "DevIssuer", "is_loopback_origin",
    "is_loopback_redirect", "parse_groups", "public_jwk", "rotate_key", "s256",
]

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks.json"


class DevIssuer:
    """A development issuer rooted at ``home``; ``mint`` works without ``start``."""

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        check_loopback(host)
        if not 0 <= port < 65536:
            raise ValueError(f"invalid port {port}")
        self.home = home
        self.host = host
        self._dir = state_dir(home)
        if not (self._dir / KEY_FILE).exists():
            write_file(self._dir / KEY_FILE, new_key_pem(), replace=False)
        self.port = port or recorded_port(self._dir / ADDRESS_FILE) or free_port(host)
        record = json.dumps({"host": host, "port": self.port}).encode()
        write_file(self._dir / ADDRESS_FILE, record, replace=True)  # 0600, as all state
        url_host = f"[{host}]" if ":" in host else host
        self.issuer_url = f"http://{url_host}:{self.port}"
        self._key_lock = threading.Lock()
        self._key_cache: tuple[tuple[int, int], rsa.RSAPrivateKey, JSON] | None = None
        self._count_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._flow = CodeFlow(self.issuer_url, self.mint)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- tokens ----------------------------------------------------------------------------

    def mint(self, username: str, audience: str, lifetime_seconds: int = 3600,
             extra_claims: dict[str, Any] | None = None) -> str:
        """A signed RS256 token for ``username``; ``extra_claims`` add or override claims."""
        if not USERNAME.fullmatch(username):
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
                key = load_key(path)
                self._key_cache = (signature, key, public_jwk(key.public_key()))
            return self._key_cache[1], self._key_cache[2]

    def exchange(self, form: dict[str, str] | None) -> JSON:
        """``POST /token`` (grant_type=authorization_code): the token response; raises
        ``OAuthError`` when the code is unknown, used, expired or not bound to this
        client, redirect URI and code verifier."""
        return self._flow.exchange(form)

    # -- documents -------------------------------------------------------------------------

    def discovery(self) -> JSON:
        """The OpenID Provider metadata served at ``DISCOVERY_PATH``."""
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
        """The JWKS served at ``JWKS_PATH``: the current signing key only."""
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

    # -- requests (called by the HTTP handler) ---------------------------------------------

    def handle_get(self, path: str, query: Mapping[str, str], origin: str | None) -> Reply:
        """``GET``: the sign-in form, the discovery document or the JWKS."""
        if path == AUTHORIZE_PATH:
            return self._flow.authorize_form(query)
        doc = self._serve(path)
        if doc is None:
            return json_reply({"error": "not_found"}, 404)
        return json_reply(doc, headers=cors_headers(origin))

    def handle_options(self, path: str, origin: str | None) -> Reply:
        """CORS preflight for the token endpoint and the documents."""
        if path not in (TOKEN_PATH, DISCOVERY_PATH, JWKS_PATH):
            return json_reply({"error": "not_found"}, 404)
        cors = cors_headers(origin)
        if cors:
            cors.update({"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                         "Access-Control-Allow-Headers": "Content-Type",
                         "Access-Control-Max-Age": "600"})
        return Reply(204, headers=cors, content_type="text/plain")

    def handle_post(self, path: str, form: dict[str, str] | None,
                    origin: str | None) -> Reply:
        """``POST``: the sign-in form's submission or the token request."""
        if path == AUTHORIZE_PATH:
            return self._flow.authorize_submit(form, origin)
        if path == TOKEN_PATH:
            return self._flow.token(form, origin)
        return json_reply({"error": "not_found"}, 404)

    # -- server ----------------------------------------------------------------------------

    def start(self) -> None:
        """Serves on ``issuer_url`` from a daemon thread until ``stop``."""
        if self._server is not None:
            raise RuntimeError("the development issuer is already running")
        self._server = make_server(self.host, self.port, self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="spe-dev-issuer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops serving (nothing happens when not started)."""
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
