"""Verifies OIDC bearer tokens (JWTs) against an issuer's discovery document and JWKS.

The discovery document is cached for ``discovery_ttl`` seconds and the keys until a token
names an unknown ``kid``; such a token triggers at most one JWKS fetch per
``min_refresh_interval`` seconds. The injected ``clock`` drives only those two timers:
the token's own times (``exp``/``nbf``/``iat``) are checked by PyJWT against the system
clock, with ``leeway_seconds`` of tolerance. Tokens are never logged nor put in messages.

The JWKS is fetched by PyJWT's ``PyJWKClient`` and parsed by ``PyJWK``
(``spe.adapters.auth.jwks``). What stays here is what ``PyJWKClient`` cannot do: find the
``jwks_uri`` in the pinned issuer's discovery document, time its refresh throttle on an
injectable clock and count failed fetches in it, and pick the single fitting key for a
token without a ``kid``.

Verified tokens are cached by their SHA-256 until their ``exp`` (at most
``cache_size`` of them, the oldest dropped first), so a token seen again costs a hash and a
dictionary lookup instead of a signature check. This changes nothing about revocation: a
JWT was never re-checked with the issuer before its ``exp``. A refused token is never
cached, the cache ends a token's life at ``exp`` itself, before the leeway, and it is
emptied whenever the keys are fetched again, so a token signed by a key the issuer has
dropped is refused as before.

``claims(token)`` returns the verified claims (``verify`` maps them to a Principal) and
``metadata()`` the cached discovery document, for verifiers built on this one (LS Login).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import jwt
import requests
from jwt import PyJWKClient, PyJWKClientError

from spe.adapters.auth.jwks import Key, parse_jwks, select_key, unavailable
from spe.adapters.auth.ttl_cache import TtlCache, token_hash
from spe.domain.errors import Unauthenticated
from spe.domain.models import JSON, Principal

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
# Asymmetric algorithms only: ``none`` and the HS* family can never be configured.
SUPPORTED_ALGORITHMS = frozenset({
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
})
_MAX_TOKEN_CHARS = 16 * 1024
_REQUIRED_CLAIMS = ["exp", "iss", "sub"]
_TOKEN_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidIssuerError, "token issuer mismatch"),
    (jwt.InvalidSignatureError, "token signature invalid"),
    (jwt.InvalidKeyError, "signing key does not match algorithm"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
)
def _token_error(exc: jwt.PyJWTError) -> Unauthenticated:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return Unauthenticated(f"token missing claim {exc.claim}")
    for kind, message in _TOKEN_ERRORS:
        if isinstance(exc, kind):
            return Unauthenticated(message)
    return Unauthenticated("invalid token")


class OidcVerifier:
    """The TokenVerifier port for one OIDC issuer and one audience. Thread-safe."""

    def __init__(self, issuer: str, audience: str, *,
                 algorithms: tuple[str, ...] = ("RS256", "ES256"),
                 leeway_seconds: int = 30, http_timeout: float = 5.0,
                 min_refresh_interval: float = 30.0, discovery_ttl: float = 3600.0,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time, cache_size: int = 10_000,
                 now: Callable[[], float] = time.time) -> None:
        unsupported = set(algorithms) - SUPPORTED_ALGORITHMS
        if not algorithms or unsupported:
            raise ValueError(f"unsupported token algorithms: {sorted(unsupported) or 'none'}")
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        self._issuer = issuer
        self._audience = audience
        self._algorithms = tuple(algorithms)
        self._leeway = leeway_seconds
        self._timeout = http_timeout
        self._min_refresh = min_refresh_interval
        self._discovery_ttl = discovery_ttl
        self._session = session or requests.Session()
        self._clock = clock
        self._discovery_url = issuer.rstrip("/") + DISCOVERY_SUFFIX
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._metadata: JSON | None = None
        self._discovery_at = -math.inf
        self._keys: list[Key] | None = None
        self._jwks_client: PyJWKClient | None = None
        self._jwks_at = -math.inf
        self._verified = TtlCache(cache_size, now) if cache_size > 0 else None
        self._key_generation = 0

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def audience(self) -> str:
        return self._audience

    def verify(self, token: str) -> Principal:
        return self._principal(self.claims(token))

    def claims(self, token: str) -> JSON:
        """The claims of ``token`` once its signature, issuer, times and audience verify;
        raises ``Unauthenticated`` (or ``IdentityProviderUnavailable``) otherwise."""
        if self._verified is None or not isinstance(token, str) \
                or len(token) > _MAX_TOKEN_CHARS:
            return self._verify_claims(token)
        key = token_hash(token)
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        generation = self._key_generation
        claims = self._verify_claims(token)
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool) \
                and generation == self._key_generation:
            self._verified.put(key, claims, float(exp))
        return claims

    def _verify_claims(self, token: str) -> JSON:
        alg, kid = self._read_header(token)
        key = self._find_key(alg, kid)
        try:
            claims: JSON = jwt.decode(
                token, key.key, algorithms=[alg], issuer=self._issuer, leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise _token_error(exc) from None
        self._check_audience(claims)
        return claims

    def metadata(self) -> JSON:
        """The issuer's discovery document (a copy), from the cache while it is fresh."""
        with self._lock:
            if self._metadata is None or self._discovery_stale():
                self._load_discovery()
            return dict(self._metadata or {})

    # -- token -----------------------------------------------------------------------------

    def _read_header(self, token: str) -> tuple[str, str | None]:
        """``(alg, kid)`` from the unverified header; nothing in it is trusted beyond that."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise Unauthenticated("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise Unauthenticated("algorithm not allowed")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed token")
        return alg, kid

    def _check_audience(self, claims: JSON) -> None:
        aud = claims.get("aud")
        if aud is None:
            accepted = claims.get("azp") == self._audience
        elif isinstance(aud, str):
            accepted = aud == self._audience
        elif isinstance(aud, list):
            accepted = self._audience in aud
        else:
            accepted = False
        if not accepted:
            raise Unauthenticated("token audience mismatch")

    def _principal(self, claims: JSON) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("token missing claim sub")
        username = claims.get("preferred_username")
        email = claims.get("email")
        return Principal(
            sub=sub,
            username=username if isinstance(username, str) and username else sub,
            email=email if isinstance(email, str) else "",
            issuer=self._issuer,
        )

    # -- keys ------------------------------------------------------------------------------

    def _find_key(self, alg: str, kid: str | None) -> Key:
        with self._lock:
            key = self._select(self._current_keys(), alg, kid)
            if key is None and kid is not None and self._may_refresh():
                key = self._select(self._fetch_keys(), alg, kid)
        if key is None:
            raise Unauthenticated("unknown signing key" if kid else "token has no usable key id")
        return key

    @staticmethod
    def _select(keys: list[Key], alg: str, kid: str | None) -> Key | None:
        try:
            return select_key(keys, alg, kid)
        except ValueError as exc:
            raise Unauthenticated(str(exc)) from exc

    def _may_refresh(self) -> bool:
        return self._clock() - self._jwks_at >= self._min_refresh

    def _current_keys(self) -> list[Key]:
        """Cached keys; loads discovery (when absent or stale) and keys (when absent)."""
        if self._jwks_uri is None or self._discovery_stale():
            self._load_discovery()
        if self._keys is None:
            return self._fetch_keys()
        return self._keys

    def _discovery_stale(self) -> bool:
        return self._clock() - self._discovery_at >= self._discovery_ttl

    def _load_discovery(self) -> None:
        url = self._discovery_url
        doc = self._get_json(url)
        if doc.get("issuer") != self._issuer:
            raise unavailable(url, "discovery document names another issuer")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise unavailable(url, "discovery document has no usable jwks_uri")
        if jwks_uri != self._jwks_uri:
            if self._keys is not None:
                self._forget_verified()
            self._keys = None
            self._jwks_client = PyJWKClient(jwks_uri, cache_jwk_set=False, timeout=self._timeout,
                                            headers={"Accept": "application/json"})
        self._jwks_uri = jwks_uri
        self._metadata = doc
        self._discovery_at = self._clock()

    def _fetch_keys(self) -> list[Key]:
        """The keys at ``jwks_uri``, fetched by PyJWT's ``PyJWKClient`` (timeout, no
        redirects, http(s) only); its own cache and cooldown are off: this class decides
        when to fetch, on the injected clock, and counts failed fetches too."""
        client, url = self._jwks_client, self._jwks_uri
        if client is None or url is None:  # pragma: no cover - discovery always runs first
            raise unavailable(self._discovery_url, "no jwks_uri")
        self._jwks_at = self._clock()  # failed attempts count too: a down IdP is not hammered
        try:
            doc = client.fetch_data()
        except PyJWKClientError as exc:  # includes PyJWKClientConnectionError
            raise unavailable(url, type(exc).__name__) from exc
        except (OSError, ValueError) as exc:  # a body that is not JSON, a reset connection
            raise unavailable(url, "response is not JSON" if isinstance(exc, ValueError)
                               else type(exc).__name__) from exc
        keys = parse_jwks(doc, url)
        if self._keys is not None:
            self._forget_verified()
        self._keys = keys
        return self._keys

    def _forget_verified(self) -> None:
        """Tokens verified with the keys being replaced are checked afresh."""
        self._key_generation += 1
        if self._verified is not None:
            self._verified.clear()

    def _get_json(self, url: str) -> JSON:
        try:
            resp = self._session.get(url, timeout=self._timeout,
                                     headers={"Accept": "application/json"})
        except (requests.RequestException, OSError, ValueError) as exc:
            raise unavailable(url, type(exc).__name__) from exc
        with resp:
            if resp.status_code != 200:
                raise unavailable(url, f"HTTP {resp.status_code}")
            try:
                doc = resp.json()
            except ValueError as exc:
                raise unavailable(url, "response is not JSON") from exc
        if not isinstance(doc, dict):
            raise unavailable(url, "response is not a JSON object")
        return doc
