"""The audit anchor (``spe.services.audit_anchor``): signed checkpoints of the chain's head
outside the database find what the chain alone cannot: the newest rows cut off, and a log
rolled back or rewritten with its hashes recomputed. On SQLite and a real PostgreSQL
(``sessions``), with the checkpoints in a directory and in a real S3 bucket."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db import audit_chain
from spe.adapters.db.audit_chain import SqlChainHead
from spe.adapters.db.repository import SqlAuditLog
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.tables import AuditRow
from spe.adapters.keyfile import load_or_create_key
from spe.adapters.storage.filesystem import FilesystemStore
from spe.cli.main import main
from spe.domain.models import AuditEvent
from spe.domain.ports import ObjectStore
from spe.services.audit_anchor import AuditAnchor
from tests.s3_server import S3Server

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
KEY = b"k" * 32


def event(n: int) -> AuditEvent:
    return AuditEvent(action="test.event", actor=f"dev|user{n}", outcome="ok",
                      target=f"t{n}", details={"n": n}, at=T0 + timedelta(seconds=n))


def fill(sessions: sessionmaker[Session], first: int, last: int) -> None:
    log = SqlAuditLog(sessions)
    for n in range(first, last + 1):
        log.append(event(n))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=5)
        return self.now


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "filesystem":
        (tmp_path / "checkpoints").mkdir()
        return FilesystemStore(tmp_path / "checkpoints")
    server: S3Server = request.getfixturevalue("s3_server")
    from tests.contract.test_object_store_contract import make_s3_store

    return make_s3_store(server, server.make_bucket(), "spe/audit")


@pytest.fixture
def anchor(sessions: sessionmaker[Session], store: ObjectStore) -> AuditAnchor:
    return AuditAnchor(SqlChainHead(sessions), store, KEY, clock=Clock())


def findings(anchor: AuditAnchor) -> list[str]:
    return [str(f) for f in anchor.verify().findings]


def test_normal_growth_verifies_against_every_checkpoint(
        sessions: sessionmaker[Session], anchor: AuditAnchor) -> None:
    fill(sessions, 1, 5)
    assert anchor.checkpoint() is not None
    assert anchor.checkpoint() is None  # the head did not move: nothing new written
    fill(sessions, 6, 9)
    written = anchor.checkpoint()
    assert written is not None and (written.count, written.head_id) == (9, 9)
    fill(sessions, 10, 12)
    result = anchor.verify()
    assert (result.checkpoints, result.events, result.findings) == (2, 12, [])


def test_deleting_the_newest_rows_is_detected_though_the_chain_still_verifies(
        sessions: sessionmaker[Session], anchor: AuditAnchor) -> None:
    fill(sessions, 1, 8)
    anchor.checkpoint()
    with sessions.begin() as s:
        s.execute(delete(AuditRow).where(AuditRow.id > 6))
    assert audit_chain.verify(sessions) == []  # what is left is a valid chain
    found = findings(anchor)
    assert len(found) == 1 and "truncated" in found[0] and "8 events" in found[0] \
        and "has 6 now" in found[0]


def test_a_rewrite_with_recomputed_hashes_is_detected(
        sessions: sessionmaker[Session], anchor: AuditAnchor) -> None:
    fill(sessions, 1, 6)
    anchor.checkpoint()
    _rewrite(sessions, row_id=3, details={"n": 3, "note": "edited"})
    assert audit_chain.verify(sessions) == []  # the attacker recomputed every hash
    found = findings(anchor)
    assert len(found) == 1 and "rolled back or rewritten: row 6" in found[0]


def test_a_rollback_then_new_events_is_detected_at_the_same_count(
        sessions: sessionmaker[Session], anchor: AuditAnchor) -> None:
    fill(sessions, 1, 6)
    anchor.checkpoint()
    with sessions.begin() as s:  # back to an older copy ...
        s.execute(delete(AuditRow).where(AuditRow.id > 4))
    fill(sessions, 20, 23)  # ... and life goes on: more events than the checkpoint saw
    assert audit_chain.verify(sessions) == []
    found = findings(anchor)
    assert len(found) == 1 and "rolled back or rewritten: row 6" in found[0]


def test_an_edited_or_foreign_checkpoint_and_missing_checkpoints_are_findings(
        sessions: sessionmaker[Session], store: ObjectStore, anchor: AuditAnchor) -> None:
    fill(sessions, 1, 3)
    assert findings(anchor) == ["(store): the log has 3 events but no checkpoint verifies"]
    anchor.checkpoint()
    (name,) = [i.key for i in store.list()]
    doc = json.loads(b"".join(store.get(name)))
    doc["count"] = 2  # an attacker lowering the checkpoint to match a truncation
    _put(store, "checkpoint-edited.json", json.dumps(doc).encode())
    other = AuditAnchor(SqlChainHead(sessions), store, b"o" * 32, clock=Clock())
    fill(sessions, 4, 4)
    other.checkpoint()  # signed with another key
    found = findings(anchor)
    assert any(f.startswith("checkpoint-edited.json: signature does not verify")
               for f in found), found
    assert sum("signature does not verify" in f for f in found) == 2, found
    assert len(found) == 2


def test_the_cli_checkpoints_and_verify_checkpoint_finds_a_truncation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SPE_HOME", str(home))
    monkeypatch.setenv("SPE_AUDIT_CHECKPOINT_LOCATION", str(tmp_path / "elsewhere"))
    url = f"sqlite:///{home / 'spe.db'}"
    home.mkdir()
    upgrade(url)
    sessions = make_sessions(make_engine(url))
    fill(sessions, 1, 5)
    runner = CliRunner()
    written = runner.invoke(main, ["audit", "checkpoint"])
    assert written.exit_code == 0 and "5 events" in written.output, written.output
    key_file = home / "audit-checkpoint.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(load_or_create_key(key_file)) == 32
    (checkpoint,) = (tmp_path / "elsewhere").iterdir()
    fill(sessions, 6, 7)
    ok = runner.invoke(main, ["audit", "verify", "--checkpoint"])
    assert ok.exit_code == 0, ok.output
    assert "1 checkpoints" in ok.output and "7 events, chain intact" in ok.output
    with sessions.begin() as s:
        s.execute(delete(AuditRow).where(AuditRow.id > 4))
    plain = runner.invoke(main, ["audit", "verify"])
    assert plain.exit_code == 0  # the chain alone cannot see it
    bad = runner.invoke(main, ["audit", "verify", "--checkpoint"])
    assert bad.exit_code == 1
    assert f"CHECKPOINT {checkpoint.name}: truncated" in bad.output


def test_a_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(ValueError, match="open to other users"):
        load_or_create_key(path)


def _put(store: ObjectStore, key: str, data: bytes) -> None:
    import io

    store.put(key, io.BytesIO(data))


def _rewrite(sessions: sessionmaker[Session], row_id: int, details: dict[str, Any]) -> None:
    """What an attacker with the database does: edit a row and recompute every hash after."""
    with sessions.begin() as s:
        rows = list(s.scalars(select(AuditRow).order_by(AuditRow.id)))
        prev = audit_chain.GENESIS
        for row in rows:
            new_details = details if row.id == row_id else dict(row.details)
            new_hash = audit_chain.chain_hash(
                prev, id=row.id, at=row.at, action=row.action, actor=row.actor,
                outcome=row.outcome, target=row.target, details=new_details)
            s.execute(update(AuditRow).where(AuditRow.id == row.id).values(
                details=new_details, prev_hash=prev, hash=new_hash))
            prev = new_hash


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("SPE_") and name not in ("SPE_HOME",):
            monkeypatch.delenv(name, raising=False)
    yield


def test_the_service_checkpoints_periodically_and_when_it_stops(
        tmp_path: Path, catalog_dir: Path) -> None:
    from spe.app import create_app
    from spe.config import Settings
    from spe.domain.ports import ExecutorChoice
    from tests.fakes import FakeExecutor, ResultsEngine
    from tests.inprocess.harness import InProcess

    home = tmp_path / "home"
    settings = Settings(home=home, catalog_dir=catalog_dir, reconcile_seconds=0.05,
                        audit_checkpoint_seconds=0.1)
    service = create_app(settings, choice=ExecutorChoice(FakeExecutor()))
    service.execution.engines["snakemake"] = ResultsEngine()
    folder = home / "audit-checkpoints"
    with service.app.test_client() as client:
        spe = InProcess(service, client, FakeExecutor())
        spe.wait("alice", spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0})))
        sessions = make_sessions(make_engine(settings.db_url))
        deadline = time.monotonic() + 30
        while _newest(folder) != audit_chain.count(sessions):  # periodic, while it runs
            assert time.monotonic() < deadline, "no checkpoint caught up with the log"
            time.sleep(0.05)
        spe.get("nobody", "/spe/v1/audit")  # a refusal: one more event, just before the end
    assert _newest(folder) == audit_chain.count(sessions)  # checkpointed when it stopped
    anchor = AuditAnchor(SqlChainHead(sessions), FilesystemStore(folder),
                         load_or_create_key(home / "audit-checkpoint.key"), clock=Clock())
    assert anchor.verify().findings == []


def _newest(folder: Path) -> int:
    counts = [json.loads(p.read_bytes())["count"] for p in folder.glob("checkpoint-*.json")]
    return max(counts, default=0)


def test_processes_starting_together_agree_on_one_whole_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "state" / "k.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_key(path), range(32)))
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert [p.name for p in path.parent.iterdir()] == ["k.key"]  # no temporary file left
