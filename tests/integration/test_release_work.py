"""The airlock's review, outbox and ``ReleaseWork`` services on a real SQLite database and
real filesystem stores, with a clock the tests move: a release whose outbox fails stays
APPROVED and the next round after the retry time releases it; a claim left by a dead
worker is taken over once it runs out; concurrent rounds release exactly once."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.catalog import load_catalog
from spe.adapters.db.releases import SqlReleaseRepository
from spe.adapters.db.repository import SqlAuditLog, SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.tables import AuditRow
from spe.adapters.policy import dev_entitlement, dev_policy
from spe.adapters.rocrate_writer import RoCrateWriter
from spe.adapters.storage.filesystem import FilesystemStore
from spe.domain.airlock import ReleaseState, WorkClaim
from spe.domain.identity import Entitlement, parse_entitlement
from spe.domain.models import OutputFile, Principal, Run, RunEnding, RunRequest
from spe.domain.paging import PageTokens
from spe.domain.ports import ObjectInfo, ObjectStore
from spe.domain.states import RunState
from spe.services.access import Gate
from spe.services.airlock import ReleaseRequests, Zones
from spe.services.outbox import Outbox
from spe.services.release_work import ReleaseWork
from spe.services.review import Review
from tests.helpers import ROOT

R = ReleaseState
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SECRET = b"s" * 32
FILES = {"results/summary.csv": b"site,n\na,12\nb,40\n", "results/notes.txt": b"done\n"}
RETRY, CLAIM = 60.0, 900.0


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FlakyStore(FilesystemStore):
    """A filesystem outbox whose first ``failures`` writes raise, like an S3 hiccup."""

    failures = 0

    def put(self, key: str, stream: BinaryIO) -> ObjectInfo:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("the outbox is unavailable")
        return super().put(key, stream)


def person(name: str, *groups: str) -> Principal:
    rights = tuple(e for g in groups
                   if isinstance(e := parse_entitlement(dev_entitlement(g)), Entitlement))
    return Principal(sub=f"dev|{name}", username=name, entitlements=rights)


ALICE = person("alice", "spe:demo")
REVIEWERS = (person("rita", "spe:demo", "spe:demo:role=reviewer"),
             person("rex", "spe:demo", "spe:demo:role=reviewer"))


@dataclass
class Airlock:
    review: Review
    outbox: Outbox
    work: ReleaseWork
    releases: SqlReleaseRepository
    audit: SqlAuditLog
    clock: Clock
    outbox_store: FlakyStore
    run_id: str
    sessions: sessionmaker[Session] = field(repr=False)

    def events(self, request_id: str, action: str) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(AuditRow.outcome).where(
                AuditRow.target == request_id, AuditRow.action == action)
                .order_by(AuditRow.id)))


def completed_run(runs: SqlRunRepository, quarantine: Path) -> str:
    """A COMPLETE run of the demo project whose outputs are in the quarantine."""
    entry = load_catalog(ROOT / "workflows")[0].resolve("tsv-summary")
    run = runs.add(Run(
        id="run1", owner_sub=ALICE.sub, owner_name="alice", project="demo",
        state=RunState.RUNNING, request=RunRequest("tsv-summary", "SMK", "9"),
        workflow_id=entry.id, workflow_version=entry.version,
        bundle_digest=entry.bundle_digest, engine="snakemake", engine_options={},
        created_at=T0))
    outputs = []
    for path, data in FILES.items():
        (quarantine / run.id / path).parent.mkdir(parents=True, exist_ok=True)
        (quarantine / run.id / path).write_bytes(data)
        outputs.append(OutputFile(path, len(data), hashlib.sha256(data).hexdigest()))
    assert runs.claim_finish(run.id, RunState.RUNNING, "t", T0, T0 + timedelta(minutes=1))
    assert runs.finish(run.id, "t", RunState.RUNNING,
                       RunEnding(RunState.COMPLETE, T0, 0, outputs, "done"))
    return run.id


@pytest.fixture
def airlock(tmp_path: Path) -> Iterator[Airlock]:
    url = f"sqlite:///{tmp_path / 'spe.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    runs, audit = SqlRunRepository(sessions), SqlAuditLog(sessions)
    quarantine, outbox_dir = tmp_path / "quarantine", tmp_path / "outbox"
    quarantine.mkdir()
    outbox_dir.mkdir()
    run_id = completed_run(runs, quarantine)
    outbox_store = FlakyStore(outbox_dir)
    plain: dict[str, ObjectStore] = {str(quarantine): FilesystemStore(quarantine),
                                     str(outbox_dir): outbox_store}
    clock = Clock()
    releases = SqlReleaseRepository(sessions)
    requests = ReleaseRequests(releases=releases, gate=Gate(dev_policy()), audit_log=audit,
                               clock=clock, claim_seconds=CLAIM, retry_seconds=RETRY)
    zones = Zones(stores=plain.__getitem__, quarantine_location=lambda _p: str(quarantine),
                  outbox_location=lambda _p: str(outbox_dir))
    outbox = Outbox(requests=requests, runs=runs,
                    catalog=load_catalog(ROOT / "workflows")[0], zones=zones,
                    crates=RoCrateWriter())
    review = Review(requests=requests, runs=runs, zones=zones, tokens=PageTokens(SECRET))
    yield Airlock(review, outbox, ReleaseWork(requests, review, outbox), releases, audit,
                  clock, outbox_store, run_id, sessions)
    engine.dispose()


def approved(airlock: Airlock) -> str:
    req = airlock.review.create(ALICE, airlock.run_id, sorted(FILES), "counts for a paper")
    assert req.state == R.IN_REVIEW, req.reason
    for reviewer in REVIEWERS:
        for path in FILES:
            req = airlock.review.vote(reviewer, req.id, path, "approve", "aggregates only")
    assert req.state == R.APPROVED
    return req.id


def state(airlock: Airlock, request_id: str) -> ReleaseState:
    req = airlock.releases.get(request_id)
    assert req is not None
    return req.state


def outbox_files(airlock: Airlock, request_id: str) -> dict[str, str]:
    base = airlock.outbox_store.root / request_id
    return {p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in base.rglob("*") if p.is_file()} if base.exists() else {}


def test_the_deciding_vote_only_approves_and_nudges_the_release(airlock: Airlock) -> None:
    nudged: list[str] = []
    airlock.review.on_approved = nudged.append
    request_id = approved(airlock)
    assert nudged == [request_id]
    assert state(airlock, request_id) == R.APPROVED
    assert outbox_files(airlock, request_id) == {}
    assert airlock.events(request_id, "release.decide") == ["approved"]


def test_a_failing_outbox_leaves_the_request_approved_and_a_later_round_releases_it(
        airlock: Airlock) -> None:
    request_id = approved(airlock)
    airlock.outbox_store.failures = 1
    assert airlock.work.carry_on() == [request_id]
    req = airlock.releases.get(request_id)
    assert req is not None and req.state == R.APPROVED
    assert req.reason == "release failed: the outbox is unavailable"
    assert airlock.events(request_id, "release.release") == ["failed"]
    assert outbox_files(airlock, request_id) == {}

    assert airlock.work.carry_on() == []  # not before the retry time
    airlock.clock.advance(RETRY + 1)
    assert airlock.work.carry_on() == [request_id]
    req = airlock.releases.get(request_id)
    assert req is not None and req.state == R.RELEASED and req.reason == ""
    assert req.released_at == airlock.clock.now and req.crate is not None
    expected = {p: hashlib.sha256(d).hexdigest() for p, d in FILES.items()}
    assert {p: d for p, d in outbox_files(airlock, request_id).items()
            if p != "ro-crate-metadata.json"} == expected
    assert "ro-crate-metadata.json" in outbox_files(airlock, request_id)

    airlock.clock.advance(RETRY + 1)
    assert airlock.work.carry_on() == []  # RELEASED is nobody's step any more
    assert airlock.events(request_id, "release.release") == ["failed", "released"]


def test_a_repeated_failure_is_audited_once_and_retried_each_time(airlock: Airlock) -> None:
    request_id = approved(airlock)
    airlock.outbox_store.failures = 3
    for _ in range(3):
        assert airlock.work.carry_on() == [request_id]
        airlock.clock.advance(RETRY + 1)
    assert state(airlock, request_id) == R.APPROVED
    assert airlock.events(request_id, "release.release") == ["failed"]
    assert airlock.work.carry_on() == [request_id]
    assert state(airlock, request_id) == R.RELEASED


def test_a_claim_left_by_a_dead_worker_is_taken_over_once_it_runs_out(
        airlock: Airlock) -> None:
    request_id = approved(airlock)
    dead = WorkClaim("dead-worker", airlock.clock.now + timedelta(seconds=CLAIM))
    assert airlock.releases.claim(request_id, frozenset({R.APPROVED}), dead,
                                  airlock.clock.now)
    assert airlock.work.carry_on() == []
    assert airlock.outbox.release(request_id) is None  # a nudge waits too
    airlock.clock.advance(CLAIM + 1)
    assert airlock.work.carry_on() == [request_id]
    assert state(airlock, request_id) == R.RELEASED
    # the dead worker wakes up: its finish is refused, nothing is released twice
    assert not airlock.releases.finish_release(
        request_id, dead.token, airlock.clock.now, {}, airlock.review.requests.event(
            "release.release", None, "released", request_id, {}))
    assert airlock.events(request_id, "release.release") == ["released"]


def test_concurrent_rounds_and_nudges_release_exactly_once(airlock: Airlock) -> None:
    request_id = approved(airlock)
    barrier = threading.Barrier(6)

    def attempt(i: int) -> None:
        barrier.wait(timeout=30)
        if i % 2:
            airlock.work.carry_on()
        else:
            airlock.outbox.release(request_id)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(attempt, range(6)))
    assert state(airlock, request_id) == R.RELEASED
    assert airlock.events(request_id, "release.release") == ["released"]


def test_checks_left_in_checking_are_run_again_by_the_next_round(airlock: Airlock) -> None:
    req = airlock.review.create(ALICE, airlock.run_id, sorted(FILES), "counts for a paper")
    findings = req.findings
    assert airlock.releases.transition(req.id, frozenset({R.IN_REVIEW}), R.CHECKING)
    req.findings, req.reason = [], ""
    airlock.releases.save(req)
    assert airlock.work.carry_on() == [req.id]
    again = airlock.releases.get(req.id)
    assert again is not None and again.state == R.IN_REVIEW and again.findings == findings
    assert airlock.events(req.id, "release.checks") == ["in_review", "in_review"]
