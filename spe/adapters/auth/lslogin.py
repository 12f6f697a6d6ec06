"""Verifies Life Science Login (LS Login) access tokens: the TokenVerifier port.

LS Login does not document whether its access tokens are JWTs or opaque, so both work:

- A JWT-shaped token (three base64url segments) is validated locally by ``OidcVerifier``
  (signature against the JWKS, issuer, times, audience).
- Any other token is introspected (RFC 7662) at the discovery document's
  ``introspection_endpoint``, with this service's client id and secret (HTTP Basic). It
  is accepted only when ``active`` is true, ``iss`` (if present) is our issuer, ``exp`` (if
  present) is in the future, ``sub`` is present, and the audience fits: ``aud`` is, or
  contains, our audience, or ``client_id`` equals it (the token was issued to us). The
  result is cached by the token's SHA-256 for ``min(introspection_ttl, exp - now)``, so a
  revoked token stays accepted for at most ``introspection_ttl`` seconds. Inactive answers
  are not cached.

When the claims lack ``eduperson_entitlement`` or ``ga4gh_passport_v1``, the userinfo
endpoint is asked with the token (cached by its SHA-256 for ``min(userinfo_ttl,
exp - now)``); its ``sub`` must equal the token's, and its claims fill in what the token
lacks (token claims win; registered claims such as ``iss``/``aud``/``exp`` are never
taken from userinfo). The merged claims go to ``mapper``, which builds the Principal.

Caches never hold a token, only its hash, and are bounded (``cache_size`` entries each).
``clock`` returns Unix time: it drives the caches and the introspected ``exp`` check.
An unreachable IdP, a 5xx or a non-JSON answer raises ``IdentityProviderUnavailable``;
a bad token raises ``Unauthenticated``. Tokens are never logged nor put in messages.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from spe.adapters.auth.oidc import OidcVerifier
from spe.adapters.auth.ttl_cache import TtlCache, token_hash
from spe.domain.errors import IdentityProviderUnavailable, Unauthenticated
from spe.domain.models import JSON, Principal

IDENTITY_CLAIMS = ("eduperson_entitlement", "ga4gh_passport_v1")
# Claims about the token itself: only the token (or its introspection) may assert them.
_REGISTERED_CLAIMS = frozenset({
    "iss", "sub", "aud", "azp", "client_id", "exp", "iat", "nbf", "jti", "scope", "active",
    "token_type", "auth_time", "nonce", "acr", "amr",
})
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_MAX_TOKEN_CHARS = 16 * 1024
_log = logging.getLogger(__name__)

ClaimsMapper = Callable[[dict[str, Any]], Principal]


def _unavailable(url: str, reason: str) -> IdentityProviderUnavailable:
    return IdentityProviderUnavailable(f"identity provider unreachable: {url}: {reason}")


def _audiences(claims: JSON) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


class LsLoginVerifier:
    """The TokenVerifier port for LS Login (or any OIDC provider with introspection and
    userinfo). Thread-safe."""

    def __init__(self, issuer: str, audience: str, *, mapper: ClaimsMapper,
                 client_id: str = "", client_secret: str = "",
                 introspection_ttl: float = 60.0, userinfo_ttl: float = 300.0,
                 http_timeout: float = 5.0, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time,
                 algorithms: tuple[str, ...] = ("RS256", "ES256"), leeway_seconds: int = 30,
                 min_refresh_interval: float = 30.0, discovery_ttl: float = 3600.0,
                 cache_size: int = 10_000) -> None:
        if introspection_ttl < 0 or userinfo_ttl < 0:
            raise ValueError("cache TTLs must not be negative")
        self._session = session or requests.Session()
        self._jwt = OidcVerifier(issuer, audience, algorithms=algorithms,
                                 leeway_seconds=leeway_seconds, http_timeout=http_timeout,
                                 min_refresh_interval=min_refresh_interval,
                                 discovery_ttl=discovery_ttl, session=self._session,
                                 clock=clock)
        self._issuer = issuer
        self._audience = audience
        self._mapper = mapper
        self._client_id = client_id
        self._client_secret = client_secret
        self._introspection_ttl = introspection_ttl
        self._userinfo_ttl = userinfo_ttl
        self._timeout = http_timeout
        self._clock = clock
        self._introspected = TtlCache(cache_size, clock)
        self._userinfo = TtlCache(cache_size, clock)
        self._warned_no_client = False

    def verify(self, token: str) -> Principal:
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise Unauthenticated("malformed token")
        key = token_hash(token)
        if _JWT_SHAPE.fullmatch(token):
            claims = self._jwt.claims(token)
        else:
            claims = self._introspect(token, key)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("token missing claim sub")
        if any(name not in claims for name in IDENTITY_CLAIMS):
            claims = self._merge_userinfo(token, key, claims)
        return self._mapper(claims)

    # -- opaque tokens ---------------------------------------------------------------------

    def _introspect(self, token: str, key: str) -> JSON:
        cached = self._introspected.get(key)
        if cached is not None:
            return cached
        if not (self._client_id and self._client_secret):
            self._warn_no_client()
            raise Unauthenticated("opaque access tokens need token introspection, and no "
                                  "introspection client (id and secret) is configured")
        url = self._endpoint("introspection_endpoint")
        if url is None:
            raise Unauthenticated("the identity provider offers no token introspection")
        auth = (quote(self._client_id, safe=""), quote(self._client_secret, safe=""))
        resp = self._request("POST", url, data={"token": token,
                                                "token_type_hint": "access_token"}, auth=auth)
        if resp.status_code in (401, 403):
            resp.close()
            raise _unavailable(url, f"HTTP {resp.status_code}: the introspection client was "
                                    "refused (check its client id and secret)")
        claims = self._check_introspection(self._json(resp, url))
        self._introspected.put(key, claims, self._expiry(claims, self._introspection_ttl))
        return claims

    def _check_introspection(self, body: JSON) -> JSON:
        if body.get("active") is not True:
            raise Unauthenticated("token is not active")
        if body.get("iss", self._issuer) != self._issuer:
            raise Unauthenticated("token issuer mismatch")
        exp = body.get("exp")
        if exp is not None and (not isinstance(exp, int | float) or exp <= self._clock()):
            raise Unauthenticated("token expired")
        if self._audience not in _audiences(body) and body.get("client_id") != self._audience:
            raise Unauthenticated("token audience mismatch")
        claims = {k: v for k, v in body.items() if k != "active"}
        claims.setdefault("iss", self._issuer)
        return claims

    def _warn_no_client(self) -> None:
        if not self._warned_no_client:
            self._warned_no_client = True
            _log.warning("an opaque access token arrived but no introspection client is "
                         "configured: such tokens are refused")

    # -- userinfo --------------------------------------------------------------------------

    def _merge_userinfo(self, token: str, key: str, claims: JSON) -> JSON:
        info = self._userinfo.get(key)
        if info is None:
            url = self._endpoint("userinfo_endpoint")
            if url is None:
                _log.debug("the identity provider has no userinfo endpoint")
                return claims
            info = self._fetch_userinfo(url, token)
            self._userinfo.put(key, info, self._expiry(claims, self._userinfo_ttl))
        if info.get("sub") != claims["sub"]:
            raise Unauthenticated("userinfo subject does not match the token")
        merged = dict(claims)
        for name, value in info.items():
            if name not in _REGISTERED_CLAIMS:
                merged.setdefault(name, value)
        return merged

    def _fetch_userinfo(self, url: str, token: str) -> JSON:
        resp = self._request("GET", url, headers={"Authorization": f"Bearer {token}"})
        if resp.status_code in (401, 403):
            resp.close()
            raise Unauthenticated("token rejected by the identity provider")
        return self._json(resp, url)

    # -- helpers ---------------------------------------------------------------------------

    def _expiry(self, claims: JSON, ttl: float) -> float:
        expires_at = self._clock() + ttl
        exp = claims.get("exp")
        return min(expires_at, float(exp)) if isinstance(exp, int | float) else expires_at

    def _endpoint(self, name: str) -> str | None:
        url = self._jwt.metadata().get(name)
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
        return None

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self._timeout,
                                         headers={"Accept": "application/json",
                                                  **kwargs.pop("headers", {})}, **kwargs)
        except (requests.RequestException, OSError, ValueError) as exc:
            raise _unavailable(url, type(exc).__name__) from None

    @staticmethod
    def _json(resp: requests.Response, url: str) -> JSON:
        with resp:
            if resp.status_code != 200:
                raise _unavailable(url, f"HTTP {resp.status_code}")
            try:
                doc = resp.json()
            except ValueError:
                raise _unavailable(url, "response is not JSON") from None
        if not isinstance(doc, dict):
            raise _unavailable(url, "response is not a JSON object")
        return doc
