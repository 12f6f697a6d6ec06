"""The ReleaseRepository port's contract (``spe/domain/ports.py``), checked on SQLite and on
a real PostgreSQL server (``conftest.db_url``): add/get/save, the compare-and-set
``transition`` (also from many threads at once), ``visible`` and the votes."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db import audit_chain
from spe.adapters.db.releases import SqlReleaseRepository
from spe.domain.airlock import Decision, ReleaseRequest, ReleaseState, RequestedFile, Vote
from spe.domain.errors import Conflict
from spe.domain.models import AuditEvent
from spe.domain.ports import VISIBLE_LIMIT, ReleaseRepository

R = ReleaseState
CEST = timezone(timedelta(hours=2))  # a non-UTC offset: must come back as the same instant
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
FILES = [RequestedFile("results/summary.csv", 42, "a" * 64),
         RequestedFile("results/plot.png", 1 << 33, "b" * 64)]


@pytest.fixture
def repo(sessions: sessionmaker[Session]) -> ReleaseRepository:
    return SqlReleaseRepository(sessions)


def make_request(requester: str = "alice", project: str = "p1", *,
                 state: ReleaseState = R.SUBMITTED, created_at: datetime = T0,
                 **kw: object) -> ReleaseRequest:
    return ReleaseRequest(id=uuid.uuid4().hex, run_id=uuid.uuid4().hex, project=project,
                          requester_sub=f"dev|{requester}", requester_name=requester,
                          justification="for the paper", state=state, files=list(FILES),
                          created_at=created_at, **kw)  # type: ignore[arg-type]


def vote(reviewer: str = "rita", path: str = "results/summary.csv", round_: int = 1,
         decision: Decision = Decision.APPROVE, at: datetime = T0) -> Vote:
    return Vote(reviewer_sub=f"dev|{reviewer}", reviewer_name=reviewer, path=path,
                decision=decision, reason=f"{reviewer} on {path}", at=at, round=round_)


def stored(repo: ReleaseRepository, request_id: str) -> ReleaseRequest:
    got = repo.get(request_id)
    assert got is not None
    return got


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# --- add / get / save ---------------------------------------------------------------------


def test_add_then_get_round_trips_every_field(repo: ReleaseRepository) -> None:
    req = make_request(
        state=R.RELEASED, created_at=datetime(2026, 3, 1, 14, 0, 0, 1, tzinfo=CEST),
        findings=[{"check": "small_counts", "path": "results/summary.csv",
                   "severity": "SOFT", "message": "Ærø ✓", "details": {"cells": [[1, 2]]}}],
        round=2, reason="fixed the counts", decided_at=T0 + timedelta(hours=1),
        released_at=T0 + timedelta(hours=2), revoked_at=None,
        crate={"@context": "https://w3id.org/ro/crate/1.1/context", "@graph": []})
    repo.add(req)
    got = stored(repo, req.id)
    assert got == req  # aware datetimes compare as instants
    for value in (got.created_at, got.decided_at, got.released_at):
        assert_utc(value)
    assert got.created_at == datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert got.files[1].size == 1 << 33


def test_add_then_get_keeps_empty_optional_fields_empty(repo: ReleaseRepository) -> None:
    req = make_request()
    repo.add(req)
    got = stored(repo, req.id)
    assert (got.findings, got.round, got.reason, got.crate) == ([], 1, "", None)
    assert (got.decided_at, got.released_at, got.revoked_at) == (None, None, None)


def test_get_of_an_unknown_request_is_none(repo: ReleaseRepository) -> None:
    assert repo.get("0" * 32) is None


def test_add_stores_the_event_in_the_same_transaction(
        repo: ReleaseRepository, sessions: sessionmaker[Session]) -> None:
    req = make_request()
    repo.add(req, AuditEvent(action="release.submit", actor="dev|alice", outcome="accepted",
                             target=req.id, at=T0))
    with pytest.raises(IntegrityError):  # the id is taken
        repo.add(replace(req, justification="again"),
                 AuditEvent(action="release.submit", actor="dev|alice", outcome="accepted",
                            target=req.id, at=T0))
    rows = list(audit_chain.export(sessions))
    assert [(r["action"], r["target"]) for r in rows] == [("release.submit", req.id)]
    assert stored(repo, req.id).justification == "for the paper"
    assert audit_chain.verify(sessions) == []


def test_save_writes_everything_but_the_state(repo: ReleaseRepository) -> None:
    req = make_request(state=R.IN_REVIEW)
    repo.add(req)
    changed = replace(req, state=R.APPROVED, findings=[{"check": "size"}], round=3,
                      reason="decided", decided_at=T0 + timedelta(minutes=5),
                      crate={"@graph": [1]})
    repo.save(changed)
    got = stored(repo, req.id)
    assert got.state == R.IN_REVIEW  # the state moves only through transition
    assert (got.findings, got.round, got.reason, got.crate) == (
        [{"check": "size"}], 3, "decided", {"@graph": [1]})
    assert got.decided_at == T0 + timedelta(minutes=5)


# --- transition: compare-and-set ----------------------------------------------------------


def test_transition_from_an_allowed_state_moves_the_request(repo: ReleaseRepository) -> None:
    req = make_request()
    repo.add(req)
    assert repo.transition(req.id, frozenset({R.SUBMITTED, R.RETURNED}), R.CHECKING) is True
    assert stored(repo, req.id).state == R.CHECKING


def test_transition_from_another_state_returns_false_and_changes_nothing(
        repo: ReleaseRepository) -> None:
    req = make_request(state=R.IN_REVIEW)
    repo.add(req)
    assert repo.transition(req.id, frozenset({R.SUBMITTED}), R.CHECKING) is False
    assert repo.transition(req.id, frozenset(), R.CHECKING) is False
    assert stored(repo, req.id).state == R.IN_REVIEW


def test_transition_of_an_unknown_request_returns_false(repo: ReleaseRepository) -> None:
    assert repo.transition("0" * 32, frozenset(R), R.CHECKING) is False


def test_concurrent_transitions_from_many_threads_have_exactly_one_winner(
        repo: ReleaseRepository) -> None:
    threads = 12
    for _ in range(3):  # a few rounds: a race that is won by luck once should not pass
        req = make_request(state=R.IN_REVIEW)
        repo.add(req)
        targets = [(R.APPROVED, R.REJECTED, R.RETURNED)[i % 3] for i in range(threads)]
        barrier = threading.Barrier(threads)

        def attempt(target: ReleaseState, request_id: str = req.id,
                    barrier: threading.Barrier = barrier) -> bool:
            barrier.wait(timeout=30)
            return repo.transition(request_id, frozenset({R.IN_REVIEW}), target)

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(attempt, targets))

        assert results.count(True) == 1, results
        assert stored(repo, req.id).state == targets[results.index(True)]


# --- visible ------------------------------------------------------------------------------


def _ids(requests: list[ReleaseRequest]) -> list[str]:
    return [r.id for r in requests]


def test_visible_shows_the_requesters_own_requests_newest_first(
        repo: ReleaseRepository) -> None:
    mine = [make_request(created_at=T0 + timedelta(minutes=i)) for i in range(3)]
    others = make_request("bob", created_at=T0 + timedelta(minutes=10))
    for req in [*mine, others]:
        repo.add(req)
    assert _ids(repo.visible("dev|alice", (), everything=False)) == _ids(mine)[::-1]
    assert _ids(repo.visible("dev|carol", (), everything=False)) == []
    assert _ids(repo.visible("alice", (), everything=False)) == []  # sub, not name


def test_visible_adds_the_requests_of_the_review_projects(repo: ReleaseRepository) -> None:
    own = make_request("rita", "p9", created_at=T0)
    p1 = make_request("alice", "p1", created_at=T0 + timedelta(minutes=1))
    p2 = make_request("bob", "p2", created_at=T0 + timedelta(minutes=2))
    p3 = make_request("carol", "p3", created_at=T0 + timedelta(minutes=3))
    for req in (own, p1, p2, p3):
        repo.add(req)
    assert _ids(repo.visible("dev|rita", ("p1", "p2"), everything=False)) == [
        p2.id, p1.id, own.id]
    assert _ids(repo.visible("dev|rita", ("p3",), everything=False)) == [p3.id, own.id]


def test_visible_to_everything_shows_every_request(repo: ReleaseRepository) -> None:
    reqs = [make_request(name, project, created_at=T0 + timedelta(minutes=i))
            for i, (name, project) in enumerate([("a", "p1"), ("b", "p2"), ("c", "p3")])]
    for req in reqs:
        repo.add(req)
    assert _ids(repo.visible("dev|zed", (), everything=True)) == _ids(reqs)[::-1]


def test_visible_returns_at_most_the_newest_limit(repo: ReleaseRepository) -> None:
    reqs = [make_request(created_at=T0 + timedelta(seconds=i))
            for i in range(VISIBLE_LIMIT + 1)]
    for req in reqs:
        repo.add(req)
    got = repo.visible("dev|alice", (), everything=False)
    assert _ids(got) == _ids(reqs)[:0:-1]  # the oldest one is left out


def test_visible_reflects_transitions_and_saves(repo: ReleaseRepository) -> None:
    req = make_request(state=R.IN_REVIEW)
    repo.add(req)
    repo.transition(req.id, frozenset({R.IN_REVIEW}), R.APPROVED)
    repo.save(replace(req, reason="ok"))
    [got] = repo.visible("dev|alice", (), everything=False)
    assert (got.state, got.reason) == (R.APPROVED, "ok")


# --- votes --------------------------------------------------------------------------------


def test_votes_come_back_per_round_in_the_order_cast(repo: ReleaseRepository) -> None:
    req = make_request(state=R.IN_REVIEW)
    repo.add(req)
    cast = [vote("rita", FILES[1].path, at=datetime(2026, 3, 1, 14, 0, tzinfo=CEST)),
            vote("rita", FILES[0].path, decision=Decision.REQUEST_CHANGES),
            vote("ravi", FILES[0].path, decision=Decision.REJECT)]
    for v in cast:
        repo.add_vote(req.id, v)
    repo.add_vote(req.id, vote("rita", FILES[0].path, round_=2))
    got = repo.votes(req.id, 1)
    assert got == cast
    assert_utc(got[0].at)
    assert repo.votes(req.id, 2) == [vote("rita", FILES[0].path, round_=2)]
    assert repo.votes(req.id, 3) == []
    assert repo.votes("0" * 32, 1) == []


def test_a_second_vote_of_a_reviewer_on_a_file_in_a_round_is_a_conflict(
        repo: ReleaseRepository) -> None:
    req = make_request(state=R.IN_REVIEW)
    repo.add(req)
    first = vote("rita", FILES[0].path)
    repo.add_vote(req.id, first)
    with pytest.raises(Conflict):
        repo.add_vote(req.id, vote("rita", FILES[0].path, decision=Decision.REJECT))
    assert repo.votes(req.id, 1) == [first]
    # another file, another reviewer, another round, another request: all accepted
    repo.add_vote(req.id, vote("rita", FILES[1].path))
    repo.add_vote(req.id, vote("ravi", FILES[0].path))
    repo.add_vote(req.id, vote("rita", FILES[0].path, round_=2))
    other = make_request(state=R.IN_REVIEW)
    repo.add(other)
    repo.add_vote(other.id, vote("rita", FILES[0].path))
    assert len(repo.votes(req.id, 1)) == 3
    assert len(repo.votes(other.id, 1)) == 1


def test_concurrent_identical_votes_store_exactly_one(repo: ReleaseRepository) -> None:
    threads = 8
    req = make_request(state=R.IN_REVIEW)
    repo.add(req)
    barrier = threading.Barrier(threads)

    def attempt(i: int) -> bool:
        barrier.wait(timeout=30)
        try:
            repo.add_vote(req.id, replace(vote("rita", FILES[0].path), reason=f"try {i}"))
        except Conflict:
            return False
        return True

    with ThreadPoolExecutor(threads) as pool:
        assert list(pool.map(attempt, range(threads))).count(True) == 1
    assert len(repo.votes(req.id, 1)) == 1
