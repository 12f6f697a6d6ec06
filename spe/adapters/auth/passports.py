"""Verifies GA4GH Passport v1.2 visas (the JWTs of a ``ga4gh_passport_v1`` claim).

A visa names its issuer (``iss``) and where its keys live (the ``jku`` header). The
``jku`` is fetched only when it is on the trusted list for that ``iss`` (exact match), so
an untrusted visa never makes us send a request. Keys are cached per ``jku`` for
``jwks_ttl`` seconds; a visa naming an unknown ``kid`` triggers at most one fetch per
``jku`` per 30 s, and so does a failed fetch. The injected ``clock`` drives those timers
and the visa's validity (``now < min(exp, asserted + max_age)``); PyJWT checks
``exp``/``iat`` against the system clock with ``leeway_seconds`` of tolerance.

A visa that does not verify is dropped with a short reason; visas are never logged nor
put in reasons.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from spe.adapters.auth.jwks import Key, parse_jwks, select_key
from spe.domain.errors import IdentityProviderUnavailable
from spe.domain.identity import Visa
from spe.domain.models import JSON

VISA_ALGORITHMS = frozenset({"RS256", "ES256"})
_MAX_VISA_CHARS = 16 * 1024
_MAX_VISAS = 256
_MAX_JWKS_BYTES = 256 * 1024
_MIN_REFRESH_SECONDS = 30.0
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub"]
_UNREACHABLE = "visa issuer unreachable"
_TOKEN_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "visa not yet valid"),
    (jwt.InvalidIssuerError, "visa issuer mismatch"),
    (jwt.InvalidAudienceError, "visa audience not accepted"),
    (jwt.InvalidSignatureError, "visa signature invalid"),
    (jwt.InvalidKeyError, "signing key does not match algorithm"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
)


class _Rejected(Exception):
    """One visa does not verify; ``str(exc)`` is the reason (never the visa)."""


@dataclass
class _Jwks:
    """The cached keys of one ``jku``. ``keys`` is None until a fetch succeeds."""

    keys: list[Key] | None = None
    fetched_at: float = -math.inf  # last successful fetch (drives the TTL)
    attempted_at: float = -math.inf  # last attempt, failed or not (drives the throttle)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Header:
    alg: str
    jku: str
    kid: str | None


def _jwt_error(exc: jwt.PyJWTError) -> _Rejected:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return _Rejected(f"visa missing claim {exc.claim}")
    for kind, reason in _TOKEN_ERRORS:
        if isinstance(exc, kind):
            return _Rejected(reason)
    return _Rejected("malformed visa")


def _select(keys: list[Key], alg: str, kid: str | None) -> Key | None:
    try:
        return select_key(keys, alg, kid)
    except ValueError as exc:
        raise _Rejected(str(exc)) from exc


def _read_capped(resp: requests.Response) -> bytes:
    """The response body, rejecting one over ``_MAX_JWKS_BYTES`` without reading it all."""
    body = bytearray()
    for chunk in resp.iter_content(chunk_size=64 * 1024):
        body += chunk
        if len(body) > _MAX_JWKS_BYTES:
            raise _Rejected(_UNREACHABLE)
    return bytes(body)


def _required_str(body: JSON, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _Rejected(f"visa missing ga4gh_visa_v1.{name}")
    return value


def _visa_body(claims: JSON) -> tuple[str, str, str, str, int]:
    """``(type, value, source, by, asserted)`` of ``ga4gh_visa_v1``."""
    body = claims.get("ga4gh_visa_v1")
    if not isinstance(body, dict):
        raise _Rejected("visa missing ga4gh_visa_v1")
    kind, value, source = (_required_str(body, name) for name in ("type", "value", "source"))
    asserted = body.get("asserted")
    if not isinstance(asserted, int) or isinstance(asserted, bool):
        raise _Rejected("visa missing ga4gh_visa_v1.asserted")
    by = body.get("by", "")
    if not isinstance(by, str):
        raise _Rejected("malformed ga4gh_visa_v1.by")
    if body.get("conditions"):
        raise _Rejected("conditions not evaluable")
    return kind, value, source, by, asserted


class PassportVerifier:
    """Verifies the visas of one passport for one subject. Thread-safe."""

    def __init__(self, trusted_issuers: dict[str, tuple[str, ...]], *,
                 max_age_seconds: int = 365 * 86400,
                 algorithms: tuple[str, ...] = ("RS256", "ES256"),
                 leeway_seconds: int = 30, http_timeout: float = 5.0,
                 jwks_ttl: float = 3600.0, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        unsupported = set(algorithms) - VISA_ALGORITHMS
        if not algorithms or unsupported:
            raise ValueError(f"unsupported visa algorithms: {sorted(unsupported) or 'none'}")
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self._trusted = {iss: frozenset(jkus) for iss, jkus in trusted_issuers.items()}
        self._max_age = max_age_seconds
        self._algorithms = tuple(algorithms)
        self._leeway = leeway_seconds
        self._timeout = http_timeout
        self._ttl = jwks_ttl
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks: dict[str, _Jwks] = {}

    def verify(self, visa_jwts: list[str], subject: str) -> tuple[list[Visa], list[str]]:
        """(valid visas, one short reason per rejected visa — never containing the JWT)"""
        visas: list[Visa] = []
        reasons: list[str] = []
        for index, visa in enumerate(visa_jwts):
            try:
                if index >= _MAX_VISAS:
                    raise _Rejected("too many visas")
                visas.append(self._verify_one(visa, subject))
            except _Rejected as exc:
                reasons.append(str(exc))
        return visas, reasons

    # -- one visa --------------------------------------------------------------------------

    def _verify_one(self, visa: str, subject: str) -> Visa:
        header = self._read_header(visa)
        iss = self._unverified_issuer(visa, header.alg)
        if header.jku not in self._trusted.get(iss, frozenset()):
            raise _Rejected("untrusted jku")  # before any request: the jku is attacker input
        key = self._signing_key(header)
        try:
            claims = jwt.decode(visa, key.key, algorithms=[header.alg], issuer=iss,
                                leeway=self._leeway, options={"require": _REQUIRED_CLAIMS})
        except jwt.PyJWTError as exc:
            raise _jwt_error(exc) from None
        if claims.get("sub") != subject:
            raise _Rejected("visa subject mismatch")
        kind, value, source, by, asserted = _visa_body(claims)
        valid_until = min(int(claims["exp"]), asserted + self._max_age)
        if not self._clock() < valid_until:
            raise _Rejected("expired")
        return Visa(type=kind, value=value, source=source, by=by, asserted=asserted,
                    valid_until=valid_until, issuer=iss)

    def _read_header(self, visa: Any) -> _Header:
        if not isinstance(visa, str) or not visa or len(visa) > _MAX_VISA_CHARS:
            raise _Rejected("malformed visa")
        try:
            header = jwt.get_unverified_header(visa)
        except jwt.PyJWTError:
            raise _Rejected("malformed visa") from None
        alg, jku, kid = header.get("alg"), header.get("jku"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _Rejected("algorithm not allowed")
        if not isinstance(jku, str) or not jku:
            raise _Rejected("visa has no jku")
        if kid is not None and not isinstance(kid, str):
            raise _Rejected("malformed visa")
        return _Header(alg=alg, jku=jku, kid=kid)

    @staticmethod
    def _unverified_issuer(visa: str, alg: str) -> str:
        """The ``iss`` claim before verification: only used to look up the trusted jkus."""
        try:
            claims = jwt.decode(visa, algorithms=[alg], options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _Rejected("malformed visa") from None
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise _Rejected("visa missing claim iss")
        return iss

    # -- keys ------------------------------------------------------------------------------

    def _signing_key(self, header: _Header) -> Key:
        entry = self._entry(header.jku)
        with entry.lock:
            if entry.keys is None or self._clock() - entry.fetched_at >= self._ttl:
                self._fetch(entry, header.jku)
            key = _select(entry.keys or [], header.alg, header.kid)
            if key is None and header.kid is not None and self._may_fetch(entry):
                self._fetch(entry, header.jku)
                key = _select(entry.keys or [], header.alg, header.kid)
        if key is None:
            raise _Rejected("unknown signing key" if header.kid else "visa has no usable kid")
        return key

    def _entry(self, jku: str) -> _Jwks:
        with self._lock:
            return self._jwks.setdefault(jku, _Jwks())

    def _may_fetch(self, entry: _Jwks) -> bool:
        return self._clock() - entry.attempted_at >= _MIN_REFRESH_SECONDS

    def _fetch(self, entry: _Jwks, jku: str) -> None:
        """Refreshes ``entry``; a failure (or a recent one) rejects the visa at hand."""
        if not self._may_fetch(entry):
            raise _Rejected(_UNREACHABLE)
        entry.attempted_at = self._clock()
        try:
            keys = parse_jwks(self._get_json(jku), jku)
        except IdentityProviderUnavailable:
            raise _Rejected(_UNREACHABLE) from None
        entry.keys, entry.fetched_at = keys, entry.attempted_at

    def _get_json(self, url: str) -> JSON:
        """The JSON object at ``url``; redirects are not followed (the jku is pinned)."""
        try:
            with self._session.get(url, timeout=self._timeout, allow_redirects=False,
                                   stream=True, headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    raise _Rejected(_UNREACHABLE)
                body = _read_capped(resp)
        except (requests.RequestException, OSError, ValueError):
            raise _Rejected(_UNREACHABLE) from None
        try:
            doc = json.loads(body)
        except ValueError:
            raise _Rejected(_UNREACHABLE) from None
        if not isinstance(doc, dict):
            raise _Rejected(_UNREACHABLE)
        return doc
