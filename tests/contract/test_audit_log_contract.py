"""The AuditLog port's contract (``spe/domain/ports.py``) on ``SqlAuditLog``, checked on
SQLite and on a real PostgreSQL server (``conftest.db_url``): every appended event reads
back as it was given, in order, the hash chain verifies after any mix of appends, and an
append that cannot be stored raises. The chain itself (hashes, tampering, the migration,
the CLI) is ``test_audit_chain.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db import audit_chain
from spe.adapters.db.repository import SqlAuditLog, SqlRunRepository
from spe.domain.models import AuditEvent, Run, RunRequest
from spe.domain.ports import AuditLog
from spe.domain.states import RunState

CEST = timezone(timedelta(hours=2))  # a non-UTC offset: must come back as the same instant
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def audit(sessions: sessionmaker[Session]) -> SqlAuditLog:
    return SqlAuditLog(sessions)


def submit_event(n: int) -> AuditEvent:
    return AuditEvent(action="run.submit", actor=f"dev|user{n}", outcome="accepted",
                      target=f"run-{n}", details={"n": n}, at=T0 + timedelta(seconds=n))


def make_run(run_id: str) -> Run:
    return Run(id=run_id, owner_sub="dev|alice", owner_name="alice", state=RunState.QUEUED,
               request=RunRequest(workflow_url="sleepy@1.0.0", workflow_type="SMK",
                                  workflow_type_version="9"),
               workflow_id="sleepy", workflow_version="1.0.0",
               bundle_digest="sha256:" + "ab" * 32, engine="snakemake", engine_options={},
               created_at=T0)


def test_an_appended_event_reads_back_as_it_was_given(audit: SqlAuditLog) -> None:
    port: AuditLog = audit
    details = {"workflow": "sleepy", "n": [1, 2], "nested": {"ok": True, "none": None},
               "text": "Ærø \u2013 東京 ✓"}
    port.append(AuditEvent(action="run.submit", actor="dev|alice", outcome="allowed",
                           target="run/abc", details=details,
                           at=datetime(2026, 3, 1, 14, 0, tzinfo=CEST)))
    [got] = audit.search()
    assert (got.action, got.actor, got.outcome, got.target, got.details) == (
        "run.submit", "dev|alice", "allowed", "run/abc", details)
    assert got.at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert got.at.utcoffset() == timedelta(0)


def test_an_event_without_a_time_is_stamped_now(audit: SqlAuditLog) -> None:
    before = datetime.now(UTC)
    audit.append(AuditEvent(action="auth", actor="anonymous", outcome="denied"))
    after = datetime.now(UTC)
    [got] = audit.search()
    assert (got.target, got.details) == ("", {})
    assert before - timedelta(seconds=1) <= got.at <= after + timedelta(seconds=1)


def test_events_read_back_in_the_order_appended(audit: SqlAuditLog,
                                                sessions: sessionmaker[Session]) -> None:
    for n in (3, 1, 2):  # appended out of time order: the log keeps the append order
        audit.append(submit_event(n))
    assert [e.target for e in audit.search()] == ["run-2", "run-1", "run-3"]  # newest first
    assert [r["target"] for r in audit_chain.export(sessions)] == ["run-3", "run-1", "run-2"]


def test_the_chain_verifies_after_appends_alone_and_in_other_transactions(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    runs = SqlRunRepository(sessions)
    for n in range(1, 7):
        if n % 3 == 0:  # in a run's transaction
            runs.add(make_run(f"r{n}"), submit_event(n))
        else:
            audit.append(submit_event(n))
    rows = list(audit_chain.export(sessions))
    assert [r["target"] for r in rows] == [f"run-{n}" for n in range(1, 7)]
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert audit_chain.verify(sessions) == []


def test_an_append_that_cannot_be_stored_raises(audit: SqlAuditLog, engine: Engine,
                                                sessions: sessionmaker[Session]) -> None:
    audit.append(submit_event(1))
    with engine.begin() as conn:  # the log's table is gone: nothing can be stored
        conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_gone"))
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, not silence
        audit.append(submit_event(2))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events_gone RENAME TO audit_events"))
    assert [r["target"] for r in audit_chain.export(sessions)] == ["run-1"]
    audit.append(submit_event(3))
    assert audit_chain.verify(sessions) == []
