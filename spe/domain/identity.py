"""What a caller's identity provider says about them: AARC-G069 group entitlements and
GA4GH Passport visas, after verification (untrusted ones never get here)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# urn:geant:lifescience-ri.eu:group:<group>[:<subgroup>...][:role=<role>]#<authority>
_ENTITLEMENT = re.compile(
    r"^(?P<ns>urn:geant:[A-Za-z0-9.-]+):group:(?P<groups>[^#]+?)(?::role=(?P<role>[^#:]+))?"
    r"#(?P<authority>[^#\s]+)$")


@dataclass(frozen=True)
class Entitlement:
    """A group entitlement: ``groups`` is the path (``("spe", "project-a")``), ``role`` the
    optional role (``""`` when absent), ``authority`` who asserted it."""

    namespace: str
    groups: tuple[str, ...]
    role: str
    authority: str

    @property
    def group(self) -> str:
        """The group path joined with ':' (what a policy names)."""
        return ":".join(self.groups)

    def __str__(self) -> str:
        role = f":role={self.role}" if self.role else ""
        return f"{self.namespace}:group:{self.group}{role}#{self.authority}"


def parse_entitlement(raw: str) -> Entitlement | None:
    """The entitlement in ``raw``, or None when it is not a well-formed group entitlement."""
    match = _ENTITLEMENT.match(raw.strip())
    if match is None:
        return None
    groups = tuple(match.group("groups").split(":"))
    if any(not g or "=" in g for g in groups):
        return None
    return Entitlement(namespace=match.group("ns"), groups=groups,
                       role=match.group("role") or "", authority=match.group("authority"))


@dataclass(frozen=True)
class Visa:
    """A verified GA4GH Passport visa (v1.2). ``valid_until`` is
    ``min(exp, asserted + max_age)`` as a Unix time; ``by`` may be empty."""

    type: str
    value: str
    source: str
    by: str
    asserted: int
    valid_until: int
    issuer: str
