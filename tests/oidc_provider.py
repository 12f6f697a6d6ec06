"""A real OIDC provider for tests, shaped like Life Science Login: an HTTP server on a free
loopback port whose issuer ends in ``/oidc/``. It serves discovery, JWKS, the token
endpoint (client_credentials, device_code, refresh_token), device authorization,
introspection (RFC 7662), userinfo and revocation (RFC 7009).

Test switches (plain attributes, change them any time): ``access_token_format``
("jwt" | "opaque"), ``claims_in_token`` (when False, entitlements and passports come only
from userinfo), ``down`` (every request is dropped: ``down_with`` "close" closes the
connection, "503" answers 503), ``enforced_interval`` (device polls sooner than this get
``slow_down``; default: the advertised ``device_interval``), ``userinfo_sub`` (overrides
the ``sub`` userinfo answers). Test controls: ``approve``/``deny`` a user code,
``issue`` tokens directly, ``count`` requests per endpoint, ``device_polls``.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from spe.adapters.auth.dev_issuer import public_jwk

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPE = "openid profile email eduperson_entitlement ga4gh_passport_v1"
ENDPOINTS = {
    ".well-known/openid-configuration": "discovery",
    "jwk": "jwks",
    "token": "token",
    "devicecode": "device_authorization",
    "introspect": "introspect",
    "userinfo": "userinfo",
    "revoke": "revoke",
}
_log = logging.getLogger(__name__)
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


class OAuthError(Exception):
    """An OAuth error response: ``status`` and the ``error`` code."""

    def __init__(self, error: str, status: int = 400, description: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.description = description


@dataclass
class User:
    sub: str
    username: str
    email: str
    entitlements: list[str] = field(default_factory=list)
    passport: list[str] = field(default_factory=list)


@dataclass
class Client:
    client_id: str
    secret: str | None  # None: a public client (identified by client_id only)
    audience: str


@dataclass
class TokenRecord:
    kind: Literal["access", "refresh"]
    client_id: str
    username: str | None  # None for client_credentials tokens
    scope: str
    expires_at: float
    revoked: bool = False


@dataclass
class DeviceAuth:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    interval: float
    last_poll: float
    status: Literal["pending", "approved", "denied", "used"] = "pending"
    username: str | None = None
    polls: list[float] = field(default_factory=list)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except ValueError:
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote(client_id), unquote(secret)) if sep else None


class OidcProvider:
    """An OIDC provider for tests; ``start()`` serves it, ``stop()`` takes it down."""

    def __init__(self, host: str = "127.0.0.1", *, clients: dict[str, str | None] | None = None,
                 users: dict[str, dict[str, Any]] | None = None,
                 access_token_lifetime: int = 300, device_interval: int = 1,
                 device_lifetime: int = 120) -> None:
        self.host = host
        self.access_token_format: Literal["jwt", "opaque"] = "jwt"
        self.claims_in_token = True
        self.down = False
        self.down_with: Literal["close", "503"] = "close"
        self.enforced_interval: float | None = None
        self.userinfo_sub: str | None = None
        self.access_token_lifetime = access_token_lifetime
        self.device_interval = device_interval
        self.device_lifetime = device_lifetime
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._jwk = public_jwk(self._key.public_key())
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._devices: dict[str, DeviceAuth] = {}
        self._counts: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        registered = clients if clients is not None else {"spe": "spe-secret"}
        for client_id, secret in registered.items():
            self.add_client(client_id, secret)
        for username, attrs in (users or {}).items():
            self.add_user(username, **attrs)

    # -- registration ----------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        if not self.port:
            raise RuntimeError("the provider is not started")
        return f"http://{self.host}:{self.port}/oidc/"

    def add_client(self, client_id: str, secret: str | None = None, *,
                   audience: str | None = None) -> None:
        """Registers a client; ``secret=None`` makes it public. ``audience`` is the ``aud``
        of its access tokens (default: its client id)."""
        with self._lock:
            self._clients[client_id] = Client(client_id, secret, audience or client_id)

    def add_user(self, username: str, *, sub: str | None = None, email: str | None = None,
                 entitlements: list[str] | None = None,
                 passport: list[str] | None = None) -> User:
        user = User(sub=sub or f"{username}-sub@lifescience-ri.eu", username=username,
                    email=email or f"{username}@example.org",
                    entitlements=list(entitlements or []), passport=list(passport or []))
        with self._lock:
            self._users[username] = user
        return user

    # -- test controls ---------------------------------------------------------------------

    def approve(self, user_code: str, username: str) -> None:
        with self._lock:
            if username not in self._users:
                raise KeyError(f"unknown user {username!r}")
            device = self._device_by_user_code(user_code)
            device.status, device.username = "approved", username

    def deny(self, user_code: str) -> None:
        with self._lock:
            self._device_by_user_code(user_code).status = "denied"

    def device_polls(self, user_code: str) -> list[float]:
        """The ``time.monotonic()`` of each token request polling this user code."""
        with self._lock:
            return list(self._device_by_user_code(user_code).polls)

    def issue(self, username: str | None, client_id: str = "spe", *,
              scope: str = DEFAULT_SCOPE, lifetime: int | None = None,
              refresh: bool = False) -> dict[str, Any]:
        """A token response as the token endpoint would give it (``username=None``: a
        client_credentials token), without going through a grant."""
        with self._lock:
            return self._token_response(self._clients[client_id], username, scope, refresh,
                                        lifetime)

    def token_active(self, token: str) -> bool:
        with self._lock:
            return self._active(token, None) is not None

    def count(self, endpoint: str) -> int:
        """How many requests ``endpoint`` (a value of ``ENDPOINTS``) has received."""
        with self._lock:
            return self._counts[endpoint]

    def make_visa(self, sub: str, visa: dict[str, Any], lifetime: int = 3600) -> str:
        """A GA4GH visa JWT signed with the provider's key (``jku`` = its JWKS)."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": sub, "iat": now, "exp": now + lifetime,
                  "jti": secrets.token_urlsafe(8), "ga4gh_visa_v1": visa}
        return jwt.encode(claims, self._key, algorithm="RS256",
                          headers={"kid": self._jwk["kid"], "jku": self.issuer + "jwk"})

    # -- documents -------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base, "jwks_uri": base + "jwk", "token_endpoint": base + "token",
            "device_authorization_endpoint": base + "devicecode",
            "introspection_endpoint": base + "introspect",
            "userinfo_endpoint": base + "userinfo", "revocation_endpoint": base + "revoke",
            "grant_types_supported": ["client_credentials", DEVICE_GRANT, "refresh_token"],
            "scopes_supported": [*DEFAULT_SCOPE.split(), "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post", "none"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
        }

    def _user_claims(self, username: str | None, scope: str) -> dict[str, Any]:
        """Profile, entitlement and passport claims released for ``scope``."""
        user = self._users.get(username or "")
        if user is None:
            return {}
        scopes = set(scope.split())
        claims: dict[str, Any] = {}
        if "profile" in scopes:
            claims["preferred_username"] = user.username
        if "email" in scopes:
            claims["email"] = user.email
        if "eduperson_entitlement" in scopes:
            claims["eduperson_entitlement"] = list(user.entitlements)
        if "ga4gh_passport_v1" in scopes:
            claims["ga4gh_passport_v1"] = list(user.passport)
        return claims

    # -- tokens (callers hold self._lock) --------------------------------------------------

    def _token_response(self, client: Client, username: str | None, scope: str,
                        refresh: bool, lifetime: int | None = None) -> dict[str, Any]:
        lifetime = self.access_token_lifetime if lifetime is None else lifetime
        now = time.time()
        record = TokenRecord("access", client.client_id, username, scope, now + lifetime)
        access = self._mint_access(record, client, now)
        self._tokens[access] = record
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                "expires_in": lifetime, "scope": scope}
        if refresh:
            refresh_token = secrets.token_urlsafe(32)
            self._tokens[refresh_token] = TokenRecord("refresh", client.client_id, username,
                                                      scope, now + 30 * 86400)
            body["refresh_token"] = refresh_token
        return body

    def _mint_access(self, record: TokenRecord, client: Client, now: float) -> str:
        if self.access_token_format == "opaque":
            return secrets.token_urlsafe(32)
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": self._subject(record), "aud": client.audience,
            "azp": client.client_id, "client_id": client.client_id, "iat": int(now),
            "exp": int(record.expires_at), "jti": secrets.token_urlsafe(12),
            "scope": record.scope,
        }
        if self.claims_in_token:
            claims.update(self._user_claims(record.username, record.scope))
        return jwt.encode(claims, self._key, algorithm="RS256",
                          headers={"kid": self._jwk["kid"], "typ": "at+jwt"})

    def _subject(self, record: TokenRecord) -> str:
        user = self._users.get(record.username or "")
        return user.sub if user else record.client_id

    def _active(self, token: str, kind: str | None) -> TokenRecord | None:
        record = self._tokens.get(token)
        if record is None or record.revoked or record.expires_at <= time.time():
            return None
        return record if kind in (None, record.kind) else None

    def _device_by_user_code(self, user_code: str) -> DeviceAuth:
        for device in self._devices.values():
            if device.user_code == user_code:
                return device
        raise KeyError(f"unknown user code {user_code!r}")

    # -- endpoints (called by the handler) -------------------------------------------------

    def handle(self, method: str, name: str, headers: dict[str, str],
               form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``(status, JSON body, extra headers)`` for one request to endpoint ``name``."""
        with self._lock:
            self._counts[name] += 1
            try:
                body = self._dispatch(method, name, headers, form)
            except OAuthError as exc:
                error = {"error": exc.error, **({"error_description": exc.description}
                                                if exc.description else {})}
                extra = ({"WWW-Authenticate": f'Bearer error="{exc.error}"'}
                         if name == "userinfo" else {})
                return exc.status, error, extra
            return 200, body, {}

    def _dispatch(self, method: str, name: str, headers: dict[str, str],
                  form: dict[str, str]) -> dict[str, Any]:
        if method == "GET" and name == "discovery":
            return self.discovery()
        if method == "GET" and name == "jwks":
            return {"keys": [self._jwk]}
        if name == "userinfo":
            return self._userinfo(headers)
        if method != "POST":
            raise OAuthError("invalid_request", 405)
        handlers = {"token": self._token, "device_authorization": self._device_authorization,
                    "introspect": self._introspect, "revoke": self._revoke}
        return handlers[name](headers, form)

    def _authenticate(self, headers: dict[str, str], form: dict[str, str], *,
                      confidential: bool = False) -> Client:
        basic = _basic_credentials(headers.get("authorization", ""))
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
        client = self._clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", 401)
        if client.secret is None:
            if confidential or secret:
                raise OAuthError("invalid_client", 401)
            return client
        if secret is None or not secrets.compare_digest(secret, client.secret):
            raise OAuthError("invalid_client", 401)
        return client

    def _token(self, headers: dict[str, str], form: dict[str, str]) -> dict[str, Any]:
        client = self._authenticate(headers, form)
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            if client.secret is None:
                raise OAuthError("unauthorized_client")
            return self._token_response(client, None, form.get("scope", "openid"), False)
        if grant == DEVICE_GRANT:
            return self._device_token(client, form.get("device_code", ""))
        if grant == "refresh_token":
            return self._refresh(client, form.get("refresh_token", ""))
        raise OAuthError("unsupported_grant_type")

    def _device_token(self, client: Client, device_code: str) -> dict[str, Any]:
        device = self._devices.get(device_code)
        if device is None or device.client_id != client.client_id:
            raise OAuthError("invalid_grant")
        now = time.monotonic()
        device.polls.append(now)
        if now >= device.expires_at:
            raise OAuthError("expired_token")
        minimum = self.enforced_interval or device.interval
        too_soon, device.last_poll = now - device.last_poll < minimum, now
        if device.status == "denied":
            raise OAuthError("access_denied")
        if device.status == "used":
            raise OAuthError("invalid_grant")
        if too_soon:
            device.interval += 5
            raise OAuthError("slow_down")
        if device.status == "pending":
            raise OAuthError("authorization_pending")
        device.status = "used"
        refresh = "offline_access" in device.scope.split()
        return self._token_response(client, device.username, device.scope, refresh)

    def _refresh(self, client: Client, token: str) -> dict[str, Any]:
        record = self._active(token, "refresh")
        if record is None or record.client_id != client.client_id:
            raise OAuthError("invalid_grant")
        record.revoked = True  # rotation: a refresh token works once
        return self._token_response(client, record.username, record.scope, True)

    def _device_authorization(self, headers: dict[str, str],
                              form: dict[str, str]) -> dict[str, Any]:
        client = self._authenticate(headers, form)
        scope = form.get("scope", "openid")
        alphabet = _USER_CODE_ALPHABET
        code = "".join(secrets.choice(alphabet) for _ in range(8))
        user_code = f"{code[:4]}-{code[4:]}"
        now = time.monotonic()
        device = DeviceAuth(secrets.token_urlsafe(24), user_code, client.client_id, scope,
                            now + self.device_lifetime, self.device_interval, now)
        self._devices[device.device_code] = device
        verification_uri = self.issuer + "device"
        return {"device_code": device.device_code, "user_code": user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
                "expires_in": self.device_lifetime, "interval": self.device_interval}

    def _introspect(self, headers: dict[str, str], form: dict[str, str]) -> dict[str, Any]:
        self._authenticate(headers, form, confidential=True)
        token = form.get("token", "")
        record = self._active(token, None)
        if record is None:
            return {"active": False}
        client = self._clients[record.client_id]
        body: dict[str, Any] = {
            "active": True, "sub": self._subject(record), "client_id": record.client_id,
            "aud": client.audience, "iss": self.issuer, "exp": int(record.expires_at),
            "scope": record.scope, "token_type": record.kind,
        }
        if record.username:
            body["username"] = record.username
        if self.claims_in_token and record.kind == "access":
            body.update(self._user_claims(record.username, record.scope))
        return body

    def _userinfo(self, headers: dict[str, str]) -> dict[str, Any]:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        record = self._active(token, "access") if scheme.lower() == "bearer" else None
        if record is None:
            raise OAuthError("invalid_token", 401)
        return {"sub": self.userinfo_sub or self._subject(record),
                **self._user_claims(record.username, record.scope)}

    def _revoke(self, headers: dict[str, str], form: dict[str, str]) -> dict[str, Any]:
        client = self._authenticate(headers, form)
        record = self._tokens.get(form.get("token", ""))
        if record is not None and record.client_id == client.client_id:
            record.revoked = True
        return {}

    # -- server ----------------------------------------------------------------------------

    def start(self) -> OidcProvider:
        if self._server is not None:
            raise RuntimeError("the provider is already running")
        handler = type("Handler", (_Handler,), {"provider": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="oidc-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving; a later ``start`` binds the same port again (same issuer)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    provider: OidcProvider
    server_version = "test-oidc-provider"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        form = self._read_form()
        if self.provider.down:
            self._drop()
            return
        path = urlsplit(self.path).path
        prefix = "/oidc/"
        name = ENDPOINTS.get(path[len(prefix):]) if path.startswith(prefix) else None
        if name is None:
            self._send(404, {"error": "not_found"}, {})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.provider.handle(method, name, headers, form)
        self._send(status, body, extra)

    def _read_form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _drop(self) -> None:
        if self.provider.down_with == "503":
            self._send(503, {"error": "temporarily_unavailable"}, {})
            return
        self.close_connection = True  # no response at all: the client sees a disconnect

    def _send(self, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("oidc provider: %s", format % args)

