"""Turns the verified claims of a Life Science Login token (or its userinfo) into a
``Principal``: AARC-G069 group entitlements from ``eduperson_entitlement`` whose authority
is trusted, and the GA4GH Passport visas of ``ga4gh_passport_v1`` that verify.

Only counts and fixed reasons are logged: never entitlement values, visas or tokens.
"""

from __future__ import annotations

import logging
from typing import Any

from spe.adapters.auth.passports import PassportVerifier
from spe.domain.errors import Unauthenticated
from spe.domain.identity import Entitlement, Visa, parse_entitlement
from spe.domain.models import Principal

ENTITLEMENT_CLAIM = "eduperson_entitlement"
PASSPORT_CLAIM = "ga4gh_passport_v1"
_log = logging.getLogger(__name__)


def _items(raw: Any) -> list[Any] | None:
    """``raw`` as a list (a single string is a list of one), or None."""
    if isinstance(raw, str):
        return [raw]
    return list(raw) if isinstance(raw, list) else None


def _parse(item: Any) -> Entitlement | None:
    return parse_entitlement(item) if isinstance(item, str) else None


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    return value if isinstance(value, str) else ""


class ClaimsMapper:
    """Maps claims of ``issuer`` to a Principal. Entitlements asserted by an authority
    outside ``trusted_authorities`` are dropped; without ``passports`` visas are ignored."""

    def __init__(self, issuer: str, trusted_authorities: frozenset[str],
                 passports: PassportVerifier | None) -> None:
        self._issuer = issuer
        self._authorities = frozenset(trusted_authorities)
        self._passports = passports

    def principal(self, claims: dict[str, Any]) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("token missing claim sub")
        return Principal(
            sub=sub,
            username=_text(claims, "preferred_username") or sub,
            email=_text(claims, "email"),
            issuer=self._issuer,
            entitlements=self._entitlements(claims),
            visas=self._visas(claims, sub),
        )

    def _entitlements(self, claims: dict[str, Any]) -> tuple[Entitlement, ...]:
        if ENTITLEMENT_CLAIM not in claims:
            return ()
        raw = _items(claims[ENTITLEMENT_CLAIM])
        if raw is None:
            _log.info("ignored claim %s: not a string or a list", ENTITLEMENT_CLAIM)
            return ()
        parsed = (_parse(item) for item in raw)
        kept = [e for e in parsed if e is not None and e.authority in self._authorities]
        if len(kept) < len(raw):
            _log.info("dropped %d of %d entitlements (malformed or untrusted authority)",
                      len(raw) - len(kept), len(raw))
        return tuple(dict.fromkeys(kept))

    def _visas(self, claims: dict[str, Any], sub: str) -> tuple[Visa, ...]:
        if PASSPORT_CLAIM not in claims or self._passports is None:
            return ()
        raw = claims[PASSPORT_CLAIM]
        if not isinstance(raw, list):
            _log.info("ignored claim %s: not a list", PASSPORT_CLAIM)
            return ()
        visas, reasons = self._passports.verify(raw, sub)
        if reasons:
            _log.info("rejected %d of %d visas: %s", len(reasons), len(raw), "; ".join(reasons))
        return tuple(visas)
