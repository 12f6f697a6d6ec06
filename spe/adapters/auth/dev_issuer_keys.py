"""The development issuer's state on disk and its network checks.

State lives in ``<home>/dev-issuer/`` (mode 0700): ``key.pem`` (RSA 2048, mode 0600) and
``issuer.json`` (the host and port, reused so tokens stay valid across restarts). Files
are written atomically; the key is created once even when two processes start together.
Also here: the public JWK of a key, and the loopback checks for the listening host,
browser origins and redirect URIs.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from spe.domain.models import JSON

STATE_DIR = "dev-issuer"
KEY_FILE = "key.pem"
ADDRESS_FILE = "issuer.json"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


# -- loopback checks -------------------------------------------------------------------------

def check_loopback(host: str) -> None:
    """``ValueError`` unless ``host`` is ``localhost`` or a loopback IP address."""
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


# -- files -----------------------------------------------------------------------------------

def state_dir(home: Path) -> Path:
    """``<home>/dev-issuer``, created with mode 0700 (and tightened if it existed)."""
    state = home / STATE_DIR
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.chmod(0o700)
    return state


def write_file(path: Path, data: bytes, *, replace: bool, mode: int = 0o600) -> bool:
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


def new_key_pem() -> bytes:
    """A fresh RSA 2048 private key, PKCS#8 PEM, unencrypted."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA private key in the PEM file ``path``; ``ValueError`` for any other key."""
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
    path = state_dir(home) / KEY_FILE
    write_file(path, new_key_pem(), replace=True)
    return str(public_jwk(load_key(path).public_key())["kid"])


# -- the port --------------------------------------------------------------------------------

def recorded_port(path: Path) -> int | None:
    """The port recorded in ``issuer.json`` at ``path``; None when missing or invalid."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    port = data.get("port") if isinstance(data, dict) else None
    return port if isinstance(port, int) and 0 < port < 65536 else None


def free_port(host: str) -> int:
    """A port the operating system reports free on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
