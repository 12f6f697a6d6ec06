"""A real GA4GH visa issuer for tests: its own RSA and EC P-256 keys, a JWKS served over
HTTP on a free loopback port (``/jwks.json``), and ``visa()`` to sign visas with them.

``iss`` is only a name (never fetched); ``jku`` is the URL of the served JWKS.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWKS_PATH = "/jwks.json"
DATASET = "https://datasets.example.org/EGAD00000000001"
DAC = "https://dac.example.org/EGAC00000000001"


_POOL_SIZE = 4
_pool: list[rsa.RSAPrivateKey] = []
_pool_turn = itertools.count()
_pool_lock = threading.Lock()


def _pooled_rsa_key() -> rsa.RSAPrivateKey:
    """One of a few RSA keys made once per process (2048-bit generation is slow); two
    issuers created one after the other never share a key."""
    with _pool_lock:
        turn = next(_pool_turn) % _POOL_SIZE
        if turn == len(_pool):
            _pool.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _pool[turn]


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, serve: Callable[[str], tuple[int, bytes]], *args: Any) -> None:
        self._serve = serve
        super().__init__(*args)

    def do_GET(self) -> None:
        status, body = self._serve(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class VisaIssuer:
    """Signs visas; ``requests`` counts every HTTP request its server answered.

    ``status`` (200 by default) is what ``/jwks.json`` answers: set it to 503 to play an
    issuer that is down while still counting the attempts."""

    def __init__(self, host: str = "127.0.0.1", iss: str = "https://visas.example.org/") -> None:
        self.host = host
        self.iss = iss
        self.status = 200
        self._kids = itertools.count(1)
        self.rsa_kid = f"rsa-{next(self._kids)}"
        self._rsa: dict[str, rsa.RSAPrivateKey] = {self.rsa_kid: _pooled_rsa_key()}
        self._ec: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.ec_kid = "ec-1"
        self._ec[self.ec_kid] = ec.generate_private_key(ec.SECP256R1())
        self._lock = threading.Lock()
        self._requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- keys ------------------------------------------------------------------------------

    def add_rsa_key(self, *, replace: bool = False) -> str:
        """A new RSA signing key (the default for RS256 from now on); returns its kid.
        With ``replace`` the older RSA keys leave the JWKS."""
        kid = f"rsa-{next(self._kids)}"
        if replace:
            self._rsa.clear()
        self._rsa[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_kid = kid
        return kid

    def public_pem(self) -> bytes:
        """The current RSA public key as PEM (to forge HS256 visas with it as the secret)."""
        return self._rsa[self.rsa_kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwks(self) -> dict[str, Any]:
        keys = [{**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid,
                 "use": "sig", "alg": "RS256"} for kid, key in self._rsa.items()]
        keys += [{**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid,
                  "use": "sig", "alg": "ES256"} for kid, key in self._ec.items()]
        return {"keys": keys}

    # -- visas -----------------------------------------------------------------------------

    def claims(self, sub: str, *, type: str = "ControlledAccessGrants",
               value: str = DATASET, source: str = DAC, by: str | None = "dac",
               asserted: int | None = None, exp: int | None = None,
               conditions: Any = None, iss: str | None = None) -> dict[str, Any]:
        """The payload of a visa; ``by=None`` leaves ``by`` out."""
        now = int(time.time())
        body: dict[str, Any] = {"type": type, "value": value, "source": source,
                                "asserted": now - 60 if asserted is None else asserted}
        if by is not None:
            body["by"] = by
        if conditions is not None:
            body["conditions"] = conditions
        return {"iss": iss or self.iss, "sub": sub, "iat": now,
                "exp": now + 3600 if exp is None else exp, "ga4gh_visa_v1": body}

    def sign(self, payload: dict[str, Any], *, alg: str = "RS256", jku: str | None = None,
             kid: str | None = None, extra_header: dict[str, Any] | None = None) -> str:
        """``payload`` signed with the RSA (RS256) or EC (ES256) key; a None value in
        ``extra_header`` removes that header (``{"jku": None}``)."""
        key: Any
        if alg == "RS256":
            key, default_kid = self._rsa[self.rsa_kid], self.rsa_kid
        elif alg == "ES256":
            key, default_kid = self._ec[self.ec_kid], self.ec_kid
        else:
            raise ValueError(f"the visa issuer signs RS256 or ES256, not {alg}")
        headers = {"typ": "JWT", "jku": jku or self.jku, "kid": kid or default_kid,
                   **(extra_header or {})}
        headers = {name: value for name, value in headers.items() if value is not None}
        return jwt.encode(payload, key, algorithm=alg, headers=headers)

    def visa(self, sub: str, *, type: str = "ControlledAccessGrants", value: str = DATASET,
             source: str = DAC, by: str | None = "dac", asserted: int | None = None,
             exp: int | None = None, conditions: Any = None, alg: str = "RS256",
             jku: str | None = None, kid: str | None = None, iss: str | None = None,
             extra_header: dict[str, Any] | None = None) -> str:
        payload = self.claims(sub, type=type, value=value, source=source, by=by,
                              asserted=asserted, exp=exp, conditions=conditions, iss=iss)
        return self.sign(payload, alg=alg, jku=jku, kid=kid, extra_header=extra_header)

    # -- server ----------------------------------------------------------------------------

    @property
    def jku(self) -> str:
        if self._server is None:
            raise RuntimeError("the visa issuer is not running")
        return f"http://{self.host}:{self._server.server_address[1]}{JWKS_PATH}"

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def _serve(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self._requests += 1
        if path != JWKS_PATH:
            return 404, b"{}"
        if self.status != 200:
            return self.status, b"{}"
        return 200, json.dumps(self.jwks()).encode()

    def start(self) -> VisaIssuer:
        if self._server is not None:
            raise RuntimeError("the visa issuer is already running")
        self._server = ThreadingHTTPServer((self.host, 0), partial(_Handler, self._serve))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="visa-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> VisaIssuer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
