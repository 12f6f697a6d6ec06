"""The development OIDC issuer of the embedded default: a loopback-only HTTP server that
publishes a discovery document and a JWKS, and a ``mint`` that signs tokens with its key.

State lives in ``<home>/dev-issuer/``: ``key.pem`` (RSA 2048, mode 0600) and
``issuer.json`` (the host and port, reused so tokens stay valid across restarts).
Never use it outside development: anyone who can read ``key.pem`` can mint any identity.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from spe.domain.models import JSON

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks.json"
STATE_DIR = "dev-issuer"
KEY_FILE = "key.pem"
ADDRESS_FILE = "issuer.json"
_USERNAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_log = logging.getLogger(__name__)


def _check_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the development issuer listens on loopback only, not {host!r}")


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


class _Handler(BaseHTTPRequestHandler):
    server_version = "spe-dev-issuer"

    def __init__(self, documents: Callable[[str], JSON | None], *args: Any) -> None:
        self._documents = documents
        super().__init__(*args)

    def do_GET(self) -> None:
        doc = self._documents(urlsplit(self.path).path)
        if doc is None:
            self.send_error(404)
            return
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

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
            "response_types_supported": ["id_token"],
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

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the development issuer is already running")
        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        self._server = server_class((self.host, self.port), partial(_Handler, self._serve))
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
