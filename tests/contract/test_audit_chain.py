"""The tamper-evident audit log (``spe.adapters.db.audit_chain``), on SQLite and on a real
PostgreSQL server: every append (alone, or with a run in one transaction) extends one hash
chain, concurrent writers never fork it, the migration chains existing rows, and
``verify`` / ``spe audit verify`` name the row of each kind of tampering."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db import audit_chain
from spe.adapters.db.repository import SqlAuditLog, SqlRunRepository
from spe.adapters.db.session import alembic_config, make_engine, make_sessions, upgrade
from spe.adapters.db.tables import AuditRow
from spe.domain.models import AuditEvent, Run, RunRequest
from spe.domain.states import RunState

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
GENESIS = "0" * 64


@pytest.fixture
def audit(sessions: sessionmaker[Session]) -> SqlAuditLog:
    return SqlAuditLog(sessions)


def event(n: int, action: str = "test.event", **kw: Any) -> AuditEvent:
    return AuditEvent(action=action, actor=kw.pop("actor", f"dev|user{n}"), outcome="ok",
                      target=kw.pop("target", f"target-{n}"),
                      details=kw.pop("details", {"n": n, "note": "größe ✓"}),
                      at=kw.pop("at", T0 + timedelta(seconds=n)))


def fill(audit: SqlAuditLog, n: int = 5) -> None:
    for i in range(1, n + 1):
        audit.append(event(i))


def make_run(run_id: str | None = None) -> Run:
    request = RunRequest(workflow_url="sleepy@1.0.0", workflow_type="SMK",
                         workflow_type_version="9")
    return Run(id=run_id or uuid.uuid4().hex, owner_sub="dev|alice", owner_name="alice",
               state=RunState.QUEUED, request=request, workflow_id="sleepy",
               workflow_version="1.0.0", bundle_digest="sha256:" + "ab" * 32,
               engine="snakemake", engine_options={}, created_at=T0)


def documented_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The chain's hash as documented, computed without the service's code."""
    fields = {k: row[k] for k in ("id", "at", "action", "actor", "outcome", "target",
                                  "details")}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash.encode() + canonical.encode("utf-8")).hexdigest()


def exported(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    return list(audit_chain.export(sessions))


def named_rows(sessions: sessionmaker[Session]) -> set[int]:
    return {p.row_id for p in audit_chain.verify(sessions)}


# --- writing ------------------------------------------------------------------------------


def test_appends_chain_each_row_to_the_previous_one_from_64_zeros(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    fill(audit, 5)
    rows = exported(sessions)
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    prev = GENESIS
    for row in rows:
        assert row["prev_hash"] == prev
        assert row["hash"] == documented_hash(prev, row)
        prev = row["hash"]
    assert rows[0]["at"] == "2026-03-01T12:00:01.123456Z"
    assert rows[0]["details"] == {"n": 1, "note": "größe ✓"}
    assert audit_chain.verify(sessions) == []


def test_run_add_chains_its_event_in_the_runs_transaction(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    audit.append(event(1))
    run = SqlRunRepository(sessions).add(make_run(), AuditEvent(
        action="run.submit", actor="dev|alice", outcome="accepted", target="r1"))
    rows = exported(sessions)
    assert [(r["id"], r["action"]) for r in rows] == [(1, "test.event"), (2, "run.submit")]
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert run.seq == 1
    assert audit_chain.verify(sessions) == []


def test_a_failed_run_add_writes_no_event_and_leaves_no_gap(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    repo = SqlRunRepository(sessions)
    run = make_run()
    repo.add(run, event(1, "run.submit"))
    with pytest.raises(IntegrityError):  # the same run id again
        repo.add(make_run(run.id), event(2, "run.submit"))
    audit.append(event(3))
    assert [r["id"] for r in exported(sessions)] == [1, 2]
    assert audit_chain.verify(sessions) == []


def test_concurrent_appends_from_8_threads_keep_one_chain(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    repo = SqlRunRepository(sessions)

    def writer(t: int) -> None:
        for i in range(25):
            e = event(t * 100 + i, actor=f"dev|thread{t}")
            if i % 5 == 0:  # some in a run's transaction
                repo.add(make_run(), e)
            else:
                audit.append(e)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    rows = exported(sessions)
    assert [r["id"] for r in rows] == list(range(1, 201))
    assert len({r["hash"] for r in rows}) == 200
    assert audit_chain.verify(sessions) == []


@pytest.mark.parametrize("first_commits", [True, False])
def test_an_append_racing_an_uncommitted_one_waits_and_takes_the_next_id(
        audit: SqlAuditLog, sessions: sessionmaker[Session], first_commits: bool) -> None:
    """Two transactions append at once: the second waits for the first and chains onto
    its row if it commits, or takes the id it would have had if it rolls back."""
    fill(audit, 2)
    first = sessions()
    audit_chain.append(first, audit_chain_row(3))  # id 3, uncommitted
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(audit.append, event(4))
        time.sleep(0.3)
        assert not second.done()  # waiting for the first transaction
        if first_commits:
            first.commit()
        else:
            first.rollback()
        first.close()
        second.result(timeout=30)
    rows = exported(sessions)
    expected = [1, 2, 3, 4] if first_commits else [1, 2, 3]
    assert [r["id"] for r in rows] == expected
    assert rows[-1]["target"] == "target-4"
    assert audit_chain.verify(sessions) == []


def audit_chain_row(n: int) -> AuditRow:
    e = event(n)
    return AuditRow(at=e.at, action=e.action, actor=e.actor, outcome=e.outcome,
                    target=e.target, details=e.details)


def test_the_hash_column_is_unique(audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    fill(audit, 2)
    with pytest.raises(IntegrityError), sessions.begin() as s:
        first = s.scalar(select(AuditRow.hash).where(AuditRow.id == 1))
        s.execute(update(AuditRow).where(AuditRow.id == 2).values(hash=first))


# --- verify: each kind of tampering is named by row ---------------------------------------


def test_verify_names_the_row_whose_details_were_edited(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    fill(audit, 5)
    with sessions.begin() as s:
        s.execute(update(AuditRow).where(AuditRow.id == 3).values(details={"n": 99}))
    problems = audit_chain.verify(sessions)
    assert {p.row_id for p in problems} == {3}
    assert "edited" in str(problems[0])
    assert str(problems[0]).startswith("row 3: ")


def test_verify_names_the_row_after_a_deleted_one(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    fill(audit, 5)
    with sessions.begin() as s:
        s.execute(delete(AuditRow).where(AuditRow.id == 3))
    problems = audit_chain.verify(sessions)
    assert {p.row_id for p in problems} == {4}
    messages = " | ".join(str(p) for p in problems)
    assert "row 4: previous row missing or reordered" in messages
    assert "gap in ids: row 3 missing" in messages


def test_verify_names_reordered_rows(audit: SqlAuditLog,
                                     sessions: sessionmaker[Session]) -> None:
    fill(audit, 5)
    with sessions.begin() as s:  # swap the ids of rows 3 and 4
        s.execute(update(AuditRow).where(AuditRow.id == 3).values(id=-3))
        s.execute(update(AuditRow).where(AuditRow.id == 4).values(id=3))
        s.execute(update(AuditRow).where(AuditRow.id == -3).values(id=4))
    problems = audit_chain.verify(sessions)
    assert any(p.row_id == 3 and "reordered" in p.message and "after row 4" in p.message
               for p in problems), problems
    assert {p.row_id for p in problems} <= {3, 4, 5}


def test_verify_finds_a_deletion_by_the_gap_even_when_the_chain_was_rehashed(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    fill(audit, 5)
    with sessions.begin() as s:  # an attacker who deletes row 3 and rewrites the chain
        s.execute(delete(AuditRow).where(AuditRow.id == 3))
        prev = s.execute(select(AuditRow.hash).where(AuditRow.id == 2)).scalar_one()
        for row in s.scalars(select(AuditRow).where(AuditRow.id > 3).order_by(AuditRow.id)):
            row.prev_hash = prev
            row.hash = audit_chain.chained(row).computed_hash()
            s.flush()
            prev = row.hash
    problems = audit_chain.verify(sessions)
    assert [str(p) for p in problems] == ["row 4: gap in ids: row 3 missing"]


def test_verify_of_an_empty_log_finds_nothing(sessions: sessionmaker[Session]) -> None:
    assert audit_chain.verify(sessions) == []
    assert audit_chain.count(sessions) == 0


# --- export and search --------------------------------------------------------------------


def test_export_yields_json_rows_with_hashes_and_filters_by_since(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    fill(audit, 4)
    rows = exported(sessions)
    assert json.loads(json.dumps(rows)) == rows
    assert set(rows[0]) == {"id", "at", "action", "actor", "outcome", "target", "details",
                            "prev_hash", "hash"}
    since = T0 + timedelta(seconds=3)
    assert [r["id"] for r in audit_chain.export(sessions, since=since)] == [3, 4]
    cest = since.astimezone(timezone(timedelta(hours=2)))  # the same instant
    assert [r["id"] for r in audit_chain.export(sessions, since=cest)] == [3, 4]


def test_search_filters_and_pages_newest_first(
        audit: SqlAuditLog, sessions: sessionmaker[Session]) -> None:
    for i in range(1, 7):
        audit.append(event(i, "run.submit" if i % 2 else "auth.failure",
                           actor="dev|alice" if i <= 3 else "dev|bob", target=f"t{i % 3}"))
    assert [e.id for e in audit.search()] == [6, 5, 4, 3, 2, 1]
    assert [e.id for e in audit.search(action="run.submit")] == [5, 3, 1]
    assert [e.id for e in audit.search(actor="dev|alice", action="run.submit")] == [3, 1]
    assert [e.id for e in audit.search(target="t0")] == [6, 3]
    at = [T0 + timedelta(seconds=i) for i in range(8)]
    assert [e.id for e in audit.search(since=at[2], until=at[4])] == [3, 2]  # [since, until)
    assert [e.id for e in audit.search(since=at[5])] == [6, 5]
    assert [e.id for e in audit.search(until=at[2])] == [1]
    assert [e.id for e in audit.search(before_id=5, limit=2)] == [4, 3]
    newest = audit.search(limit=1)[0]
    assert (newest.id, newest.hash) == (6, exported(sessions)[-1]["hash"])
    assert newest.at == T0 + timedelta(seconds=6)


# --- the migration ------------------------------------------------------------------------


def test_migration_0003_chains_existing_rows_and_downgrades(db_url: str) -> None:
    upgrade(db_url, "0002")
    eng = make_engine(db_url)
    try:
        with eng.begin() as conn:
            for i in range(1, 4):
                conn.execute(
                    text("INSERT INTO audit_events (at, action, actor, outcome, target, "
                         "details) VALUES (:at, 'legacy', 'dev|old', 'ok', '', :d)"),
                    {"at": (T0 + timedelta(seconds=i)).replace(tzinfo=None),
                     "d": json.dumps({"i": i, "ü": "✓"})})
        upgrade(db_url)
        sessions = make_sessions(eng)
        rows = exported(sessions)
        assert [r["prev_hash"] for r in rows] == [GENESIS, rows[0]["hash"], rows[1]["hash"]]
        assert rows[2]["hash"] == documented_hash(rows[1]["hash"], rows[2])
        SqlAuditLog(sessions).append(event(4))
        assert audit_chain.verify(sessions) == []
        command.downgrade(alembic_config(db_url), "0002")
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 4
    finally:
        eng.dispose()


# --- the CLI ------------------------------------------------------------------------------


def spe(db_url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPE_DATABASE_URL": db_url, "SPE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "spe.cli.main", "audit", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_verify_exits_0_on_an_intact_chain_and_1_naming_tampered_rows(
        db_url: str, audit: SqlAuditLog, sessions: sessionmaker[Session],
        tmp_path: Path) -> None:
    fill(audit, 5)
    ok = spe(db_url, tmp_path, "verify")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "5 events, chain intact"
    with sessions.begin() as s:
        s.execute(update(AuditRow).where(AuditRow.id == 2).values(outcome="allowed"))
        s.execute(delete(AuditRow).where(AuditRow.id == 4))
    bad = spe(db_url, tmp_path, "verify")
    assert bad.returncode == 1
    assert "row 2: contents do not match its hash (row edited)" in bad.stderr
    assert "row 5: previous row missing or reordered" in bad.stderr
    assert "chain intact" not in bad.stdout


def test_cli_export_writes_json_lines_since_a_time(
        db_url: str, audit: SqlAuditLog, tmp_path: Path) -> None:
    fill(audit, 3)
    everything = spe(db_url, tmp_path, "export")
    assert everything.returncode == 0, everything.stderr
    lines = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [r["id"] for r in lines] == [1, 2, 3]
    assert lines[0]["details"]["note"] == "größe ✓"
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    later = spe(db_url, tmp_path, "export", "--since", "2026-03-01T12:00:02.5Z")
    assert [json.loads(line)["id"] for line in later.stdout.splitlines()] == [3]
    wrong = spe(db_url, tmp_path, "export", "--since", "yesterday")
    assert wrong.returncode == 2
    assert "ISO 8601" in wrong.stderr
