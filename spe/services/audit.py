"""Reading the audit log (``GET /spe/v1/audit``): operators search the events, newest
first, in pages with signed tokens. Anyone else is refused, and the refusal is audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from spe.domain.errors import Forbidden, InvalidRequest
from spe.domain.models import JSON, AuditEvent, Page, Principal
from spe.domain.paging import PageTokens
from spe.domain.permissions import Resource, allowed, permission
from spe.domain.ports import AuditLog
from spe.services.access import Gate

AUDIT_READ = permission("audit.read")
MAX_PAGE_SIZE = 500


class AuditEntry(Protocol):
    """One stored event, with its place (``id``) and ``hash`` in the chain."""

    @property
    def id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def action(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def details(self) -> JSON: ...
    @property
    def hash(self) -> str: ...


class AuditStore(Protocol):
    """Events matching every given filter (empty strings and None match all), ``since``
    inclusive, ``until`` exclusive, ids below ``before_id``; newest (highest id) first."""

    def search(self, *, action: str, actor: str, target: str, since: datetime | None,
               until: datetime | None, before_id: int | None,
               limit: int) -> Sequence[AuditEntry]: ...


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    actor: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def scope(self) -> str:
        times = [t.isoformat() if t else "" for t in (self.since, self.until)]
        return "|".join([self.action, self.actor, self.target, *times])


def parse_instant(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 date-time query value as an aware datetime (no offset means UTC); one
    that cannot be expressed in UTC (``0001-01-01T00:00:00+01:00``) is 400 too."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError as exc:
        raise InvalidRequest(f"{name} is not an ISO 8601 date-time",
                             [(f"/{name}", str(exc)[:100])]) from exc
    except OverflowError as exc:
        raise InvalidRequest(f"{name} is out of range", [(f"/{name}", "not a time in UTC "
                                                          "between years 1 and 9999")]) from exc


@dataclass(frozen=True)
class AuditSearch:
    """The query as given: parsed only once the caller may read the log."""

    action: str = ""
    actor: str = ""
    target: str = ""
    since: str | None = None
    until: str | None = None

    def parse(self) -> AuditFilter:
        return AuditFilter(action=self.action, actor=self.actor, target=self.target,
                           since=parse_instant("since", self.since),
                           until=parse_instant("until", self.until))


@dataclass
class AuditQuery:
    store: AuditStore
    gate: Gate
    tokens: PageTokens
    log: AuditLog | None = None

    def list(self, who: Principal, search: AuditSearch, page_size: int,
             page_token: str = "") -> Page[AuditEntry]:
        """Authorise first, then parse: a refused caller never reaches the parser."""
        self._authorize(who)
        flt = search.parse()
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        scope = f"audit|{who.sub}|{flt.scope()}"
        before = self.tokens.decode(page_token, scope) if page_token else None
        rows = self.store.search(action=flt.action, actor=flt.actor, target=flt.target,
                                 since=flt.since, until=flt.until, before_id=before,
                                 limit=size + 1)
        items = list(rows[:size])
        token = self.tokens.encode(items[-1].id, scope) if len(rows) > size else ""
        return Page(items=items, next_token=token)

    def _authorize(self, who: Principal) -> None:
        if allowed(self.gate.access(who), AUDIT_READ, Resource()):
            return
        if self.log is not None:
            self.log.append(AuditEvent(action="audit.read", actor=who.sub, outcome="denied",
                                       details={"reason": "not an operator"}))
        raise Forbidden("only operators may read the audit log", rule=AUDIT_READ)
