"""JSON Web Key Sets parsed by PyJWT (``PyJWK``), and the key a token's header names.

Only public signature keys are kept: a JWK carrying private material (``d``) or meant for
encryption (``use`` other than ``sig``) is dropped before parsing, and PyJWT drops the keys
it cannot use. Shared by the OIDC verifier (keys fetched by ``PyJWKClient``) and the
passport verifier (keys of a pinned ``jku``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from spe.domain.errors import IdentityProviderUnavailable
from spe.domain.models import JSON

_KTY_BY_PREFIX = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class Key:
    """One parsed key with the ``alg`` its JWK declared (None: any of its type)."""

    jwk: PyJWK
    alg: str | None

    @property
    def kid(self) -> str | None:
        return self.jwk.key_id

    @property
    def key(self) -> Any:
        return self.jwk.key

    def fits(self, alg: str) -> bool:
        return self.jwk.key_type == _KTY_BY_PREFIX[alg[:2]] and self.alg in (None, alg)


def unavailable(url: str, reason: str) -> IdentityProviderUnavailable:
    return IdentityProviderUnavailable(f"identity provider unreachable: {url}: {reason}")


def _public_signing(jwk: Any) -> bool:
    return (isinstance(jwk, dict) and "d" not in jwk and jwk.get("use", "sig") == "sig"
            and isinstance(jwk.get("kid"), str | None) and isinstance(jwk.get("alg"), str | None))


def parse_jwks(doc: JSON, url: str) -> list[Key]:
    """The usable public signature keys of a JWKS document; ``IdentityProviderUnavailable``
    when it is not one (no ``keys`` list)."""
    keys = doc.get("keys")
    if not isinstance(keys, list):
        raise unavailable(url, "JWKS has no 'keys' list")
    return [key for key in map(_parse, keys) if key is not None]


def _parse(jwk: Any) -> Key | None:
    """One JWK parsed by PyJWT (as ``PyJWKSet`` does, keeping the declared ``alg``); None
    when it is not a usable public signature key."""
    if not _public_signing(jwk):
        return None
    try:
        return Key(jwk=PyJWK(jwk), alg=jwk.get("alg"))
    except (PyJWTError, ValueError, KeyError, TypeError):
        return None


def select_key(keys: list[Key], alg: str, kid: str | None) -> Key | None:
    """The key named ``kid`` (or, without a kid, the only key fitting ``alg``); None when
    there is none; ``ValueError`` when the named key does not fit the algorithm."""
    if kid is None:
        fitting = [key for key in keys if key.fits(alg)]
        return fitting[0] if len(fitting) == 1 else None
    named = [key for key in keys if key.kid == kid]
    if not named:
        return None
    fitting = [key for key in named if key.fits(alg)]
    if len(fitting) != 1:
        raise ValueError("signing key does not match algorithm")
    return fitting[0]
