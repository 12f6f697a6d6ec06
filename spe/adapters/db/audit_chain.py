"""The tamper-evident audit log: a hash chain over the rows of ``audit_events``.

Every row carries ``prev_hash`` (the ``hash`` of the row before it; 64 zeros for the first
row) and ``hash = sha256(prev_hash || canonical JSON of {id, at, action, actor, outcome,
target, details})``, canonical meaning sorted keys, no spaces, UTF-8 (``ensure_ascii=False``)
and ``at`` as ISO 8601 UTC with microseconds. An exported row can therefore be checked
without this code.

``append`` chains one row inside the caller's transaction with one statement: an ``INSERT
... SELECT`` that reads the head (id and hash), computes the new row's hash in the database
(PostgreSQL's ``sha256``; on SQLite a function registered on each connection by
``spe.adapters.db.session``) and writes the row, ``ON CONFLICT DO NOTHING``. Two writers
never fork the chain: the row's id is the head's id + 1 and ids are unique, so of two
writers that read the same head, the second waits for the first to commit (PostgreSQL's
unique index) and then inserts nothing; it repeats the statement, whose new snapshot sees
the first writer's row. SQLite takes its write lock before the statement reads the head.
A rolled-back append leaves no gap in the ids.

``verify`` walks the rows in id order and names every row that does not fit: its contents
do not match its hash (edited), its ``prev_hash`` is not the previous row's hash (a row
deleted, or rows reordered), or an id is skipped (rows deleted)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, TextClause, bindparam, func, select, text, true
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.tables import AuditRow
from spe.domain.models import JSON

GENESIS = "0" * 64
BATCH = 1000

RETRIES = 1000  # appends that lost a race for the same id, in a row, before giving up
SQLITE_SHA256 = "spe_sha256"  # registered on every SQLite connection (session.py)

_HASH_OF = {
    "postgresql": "encode(sha256(convert_to({}, 'UTF8')), 'hex')",
    "sqlite": SQLITE_SHA256 + "({})",
}
_APPEND = """
INSERT INTO audit_events (id, at, action, actor, outcome, target, details, prev_hash, hash)
SELECT coalesce(head.id, 0) + 1, :at, :action, :actor, :outcome, :target, :details,
       coalesce(head.hash, :genesis), {hash}
FROM (SELECT 1 AS one) AS start
LEFT JOIN (SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1) AS head ON 1 = 1
WHERE 1 = 1
ON CONFLICT DO NOTHING
RETURNING id, prev_hash, hash"""
_HASHED = ("coalesce(head.hash, :genesis) || :before_id "
           "|| CAST(coalesce(head.id, 0) + 1 AS TEXT) || :after_id")


def sqlite_sha256(value: str) -> str:
    """The SQLite function the append statement hashes with."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def iso_utc(at: datetime) -> str:
    """``at`` as the chain writes it: ISO 8601, UTC, microseconds, ``Z`` (naive is UTC)."""
    return _utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(prev_hash: str, *, id: int, at: datetime, action: str, actor: str,
               outcome: str, target: str, details: JSON) -> str:
    """The hash of one row, given the hash of the row before it."""
    before, after = canonical_around_id(at=at, action=action, actor=actor, outcome=outcome,
                                        target=target, details=details)
    return hashlib.sha256((prev_hash + before + str(id) + after).encode("utf-8")).hexdigest()


def canonical_around_id(*, at: datetime, action: str, actor: str, outcome: str, target: str,
                        details: JSON) -> tuple[str, str]:
    """The row's canonical JSON cut where its id goes: ``before + str(id) + after`` (sorted
    keys put ``id`` between ``details`` and ``outcome``), so the database can add the id."""
    def dumps(body: dict[str, Any]) -> str:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    first = dumps({"at": iso_utc(at), "action": action, "actor": actor, "details": details})
    last = dumps({"outcome": outcome, "target": target})
    return first[:-1] + ',"id":', "," + last[1:]


@dataclass(frozen=True)
class ChainedEvent:
    """One stored row of the chain."""

    id: int
    at: datetime
    action: str
    actor: str
    outcome: str
    target: str
    details: JSON
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        return chain_hash(self.prev_hash, id=self.id, at=self.at, action=self.action,
                          actor=self.actor, outcome=self.outcome, target=self.target,
                          details=self.details)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": iso_utc(self.at), "action": self.action,
                "actor": self.actor, "outcome": self.outcome, "target": self.target,
                "details": self.details, "prev_hash": self.prev_hash, "hash": self.hash}


def chained(row: AuditRow) -> ChainedEvent:
    return ChainedEvent(id=row.id, at=_utc(row.at), action=row.action, actor=row.actor,
                        outcome=row.outcome, target=row.target, details=dict(row.details),
                        prev_hash=row.prev_hash, hash=row.hash)


@dataclass(frozen=True)
class Problem:
    """Where the chain breaks: ``row_id`` is the row that does not fit."""

    row_id: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row_id}: {self.message}"


# --- writing ------------------------------------------------------------------------------


@functools.cache
def _append_statement(dialect: str) -> TextClause:
    if dialect not in _HASH_OF:
        raise RuntimeError(f"the audit chain cannot append on {dialect!r}")
    sql = _APPEND.format(hash=_HASH_OF[dialect].format(_HASHED))
    return text(sql).bindparams(bindparam("at", type_=AuditRow.__table__.c.at.type),
                                bindparam("details", type_=AuditRow.__table__.c.details.type))


def append(session: Session, row: AuditRow) -> AuditRow:
    """Chain ``row`` (its id and hashes are set here) onto the log, in ``session``'s
    transaction, with one statement (see the module's docstring)."""
    statement = _append_statement(session.get_bind().dialect.name)
    before, after = canonical_around_id(at=row.at, action=row.action, actor=row.actor,
                                        outcome=row.outcome, target=row.target,
                                        details=row.details)
    values = {"at": row.at, "action": row.action, "actor": row.actor, "outcome": row.outcome,
              "target": row.target, "details": row.details, "genesis": GENESIS,
              "before_id": before, "after_id": after}
    for _ in range(RETRIES):
        written = session.execute(statement, values).first()
        if written is not None:
            row.id, row.prev_hash, row.hash = written.id, written.prev_hash, written.hash
            return row
    raise RuntimeError(f"the audit chain lost {RETRIES} races for its head in a row")


# --- reading ------------------------------------------------------------------------------


def _in_id_order(session: Session, where: ColumnElement[bool]) -> Iterator[ChainedEvent]:
    """Every matching row by ascending id, in batches (nothing accumulates in the session)."""
    after: int | None = None
    while True:
        query: Select[tuple[AuditRow]] = select(AuditRow).where(where)
        if after is not None:
            query = query.where(AuditRow.id > after)
        batch = [chained(r) for r in session.scalars(query.order_by(AuditRow.id).limit(BATCH))]
        session.expunge_all()
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1].id


def export(sessions: sessionmaker[Session],
           since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """JSON-able rows (with their hashes) in chain order; only those ``at >= since``."""
    where = true() if since is None else AuditRow.at >= _utc(since)
    with sessions() as s:
        for event in _in_id_order(s, where):
            yield event.to_json()


def count(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(AuditRow)) or 0)


class SqlChainHead:
    """The chain's head and the hashes of chosen rows, for the audit anchor
    (``spe.services.audit_anchor.ChainHead``)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def head(self) -> tuple[int, int, str] | None:
        with self._sessions() as s:
            total = int(s.scalar(select(func.count()).select_from(AuditRow)) or 0)
            row = s.execute(select(AuditRow.id, AuditRow.hash)
                            .order_by(AuditRow.id.desc()).limit(1)).first()
        return (total, row.id, row.hash) if row else None

    def hashes(self, ids: Collection[int]) -> dict[int, str]:
        wanted, found = sorted(ids), {}
        with self._sessions() as s:
            for at in range(0, len(wanted), BATCH):
                query = select(AuditRow.id, AuditRow.hash).where(
                    AuditRow.id.in_(wanted[at:at + BATCH]))
                found.update({r.id: r.hash for r in s.execute(query)})
        return found


def verify(sessions: sessionmaker[Session]) -> list[Problem]:
    """Every place where the stored chain does not verify, by row id (empty: intact)."""
    problems: list[Problem] = []
    prev: ChainedEvent | None = None
    with sessions() as s:
        for row in _in_id_order(s, true()):
            problems += _content(row) + _link(s, row, prev) + _gap(row, prev)
            prev = row
    return problems


def _content(row: ChainedEvent) -> list[Problem]:
    if row.computed_hash() == row.hash:
        return []
    return [Problem(row.id, "contents do not match its hash (row edited)")]


def _link(session: Session, row: ChainedEvent, prev: ChainedEvent | None) -> list[Problem]:
    expected = prev.hash if prev else GENESIS
    if row.prev_hash == expected:
        return []
    follows = session.scalar(select(AuditRow.id).where(AuditRow.hash == row.prev_hash))
    if follows is None:
        return [Problem(row.id, "previous row missing or reordered "
                                "(its prev_hash matches no row)")]
    after = f"row {prev.id}" if prev else "the start"
    return [Problem(row.id, f"rows reordered: the chain puts it after row {follows}, "
                            f"its id after {after}")]


def _gap(row: ChainedEvent, prev: ChainedEvent | None) -> list[Problem]:
    first_missing = prev.id + 1 if prev else 1
    if row.id == first_missing:
        return []
    if row.id < first_missing:  # ids below 1: no append writes them
        return [Problem(row.id, "id out of the chain's range (rows reordered)")]
    missing = (f"row {first_missing}" if row.id - first_missing == 1
               else f"rows {first_missing}..{row.id - 1}")
    return [Problem(row.id, f"gap in ids: {missing} missing")]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
