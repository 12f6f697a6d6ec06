"""The ReleaseRepository port's contract (``spe/domain/ports.py``) on SQLite and on a real
PostgreSQL server: the paged listing filtered in SQL (keyset on time and id, ties
included), work claims, and moves written with their audit events exactly once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from spe.adapters.db.releases import SqlReleaseRepository
from spe.adapters.db.session import make_sessions
from spe.adapters.db.tables import AuditRow
from spe.domain.airlock import (
    ReleaseCursor,
    ReleaseFilter,
    ReleaseRequest,
    ReleaseState,
    RequestedFile,
    WorkClaim,
)
from spe.domain.errors import Conflict
from spe.domain.models import AuditEvent

R = ReleaseState
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def repo(engine: Engine) -> SqlReleaseRepository:
    return SqlReleaseRepository(make_sessions(engine))


def add(repo: SqlReleaseRepository, requester: str = "alice", project: str = "p1",
        state: ReleaseState = R.IN_REVIEW, at: datetime = T0,
        claim: WorkClaim | None = None) -> ReleaseRequest:
    req = ReleaseRequest(id=uuid.uuid4().hex, run_id="run", project=project,
                         requester_sub=f"dev|{requester}", requester_name=requester,
                         justification="why", state=state,
                         files=[RequestedFile("a.csv", 1, "0" * 64)], created_at=at)
    repo.add(req, claim=claim)
    return req


def event(target: str, outcome: str = "released") -> AuditEvent:
    return AuditEvent(action="release.release", actor="system", outcome=outcome,
                      target=target, at=T0)


def events(engine: Engine, target: str) -> int:
    with make_sessions(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(AuditRow)
                            .where(AuditRow.target == target)) or 0)


def all_pages(repo: SqlReleaseRepository, flt: ReleaseFilter, size: int) -> list[str]:
    seen: list[str] = []
    after: ReleaseCursor | None = None
    while True:
        page = repo.page(flt, after, size)
        seen += [r.id for r in page]
        if len(page) < size:
            return seen
        after = ReleaseCursor(page[-1].created_at, page[-1].id)


def test_pages_walk_every_request_once_newest_first_even_with_equal_times(
        repo: SqlReleaseRepository) -> None:
    same = [add(repo, at=T0) for _ in range(5)]  # five requests of the same instant
    newer = add(repo, at=T0 + timedelta(seconds=1))
    older = add(repo, at=T0 - timedelta(seconds=1))
    flt = ReleaseFilter(sub="dev|alice", member_of=("p1",))
    expected = [newer.id, *sorted((r.id for r in same), reverse=True), older.id]
    for size in (1, 2, 3, 7, 100):
        assert all_pages(repo, flt, size) == expected, size


def test_the_listing_filters_in_sql(repo: SqlReleaseRepository) -> None:
    mine = add(repo, "alice", "p1")
    mine_released = add(repo, "alice", "p2", R.RELEASED)
    bobs_p1 = add(repo, "bob", "p1")
    bobs_p2 = add(repo, "bob", "p2")
    carols_p3 = add(repo, "carol", "p3")

    def ids(flt: ReleaseFilter) -> set[str]:
        return {r.id for r in repo.page(flt, None, 100)}

    alice = "dev|alice"
    member = ("p1", "p2")
    assert ids(ReleaseFilter(sub=alice, member_of=member)) == {mine.id, mine_released.id}
    assert ids(ReleaseFilter(sub=alice, projects=("p1",), member_of=member)) == {
        mine.id, mine_released.id, bobs_p1.id}
    # an ex-member of p2 no longer sees their own request of p2; of none, none at all
    assert ids(ReleaseFilter(sub=alice, member_of=("p1",))) == {mine.id}
    assert ids(ReleaseFilter(sub=alice)) == set()
    assert ids(ReleaseFilter(sub=alice, own=False, projects=("p1", "p2"), not_own=True)) \
        == {bobs_p1.id, bobs_p2.id}
    assert ids(ReleaseFilter(sub=alice, everything=True)) == {
        mine.id, mine_released.id, bobs_p1.id, bobs_p2.id, carols_p3.id}
    assert ids(ReleaseFilter(sub=alice, state=R.RELEASED, member_of=member)) == {
        mine_released.id}
    assert ids(ReleaseFilter(sub=alice, own=False)) == set()


def test_a_claim_has_one_holder_until_it_runs_out_and_waiting_skips_held_requests(
        repo: SqlReleaseRepository) -> None:
    req = add(repo, state=R.APPROVED)
    approved = frozenset({R.APPROVED})
    assert repo.waiting(approved, T0, 10) == [req.id]
    assert repo.claim(req.id, approved, WorkClaim("a", T0 + timedelta(minutes=1)), T0)
    assert not repo.claim(req.id, approved, WorkClaim("b", T0 + timedelta(minutes=1)), T0)
    assert repo.waiting(approved, T0, 10) == []
    later = T0 + timedelta(minutes=2)
    assert repo.waiting(approved, later, 10) == [req.id]
    assert repo.claim(req.id, approved, WorkClaim("b", later + timedelta(minutes=1)), later)
    assert not repo.claim(req.id, frozenset({R.CHECKING}), WorkClaim("c", later), later)


def test_postpone_and_unclaim_are_for_the_holder_only(repo: SqlReleaseRepository) -> None:
    req = add(repo, state=R.APPROVED, claim=WorkClaim("a", T0 + timedelta(minutes=1)))
    assert not repo.postpone(req.id, "b", T0 + timedelta(hours=1), "no")
    repo.unclaim(req.id, "b")
    assert repo.waiting(frozenset({R.APPROVED}), T0, 10) == []
    assert repo.postpone(req.id, "a", T0 + timedelta(hours=1), "release failed: x")
    assert repo.get(req.id).reason == "release failed: x"  # type: ignore[union-attr]
    assert repo.waiting(frozenset({R.APPROVED}), T0 + timedelta(minutes=30), 10) == []
    repo.unclaim(req.id, "a")
    assert repo.waiting(frozenset({R.APPROVED}), T0, 10) == [req.id]


def test_a_move_out_of_the_carried_on_states_drops_the_claim(
        repo: SqlReleaseRepository) -> None:
    req = add(repo, state=R.SUBMITTED, claim=WorkClaim("a", T0 + timedelta(minutes=1)))
    assert repo.transition(req.id, frozenset({R.SUBMITTED}), R.CHECKING)
    assert not repo.claim(req.id, frozenset({R.CHECKING}), WorkClaim("b", T0), T0)
    assert repo.transition(req.id, frozenset({R.CHECKING}), R.IN_REVIEW)
    assert repo.claim(req.id, frozenset({R.IN_REVIEW}), WorkClaim("b", T0), T0)


def test_finish_release_moves_and_audits_exactly_once_for_the_holder(
        engine: Engine, repo: SqlReleaseRepository) -> None:
    req = add(repo, state=R.APPROVED, claim=WorkClaim("a", T0 + timedelta(minutes=1)))
    crate = {"@graph": []}
    assert not repo.finish_release(req.id, "b", T0, crate, event(req.id))
    assert events(engine, req.id) == 0
    assert repo.finish_release(req.id, "a", T0, crate, event(req.id))
    assert not repo.finish_release(req.id, "a", T0, crate, event(req.id))
    assert events(engine, req.id) == 1
    done = repo.get(req.id)
    assert done is not None and done.state == R.RELEASED and done.crate == crate
    assert done.released_at == T0 and done.reason == ""


def test_a_transition_and_a_decision_write_their_event_only_when_they_move(
        engine: Engine, repo: SqlReleaseRepository) -> None:
    req = add(repo, state=R.IN_REVIEW)
    assert repo.decide(req.id, R.APPROVED, T0, event(req.id, "approved"))
    assert not repo.decide(req.id, R.REJECTED, T0, event(req.id, "rejected"))
    assert not repo.transition(req.id, frozenset({R.RELEASED}), R.REVOKED,
                               event(req.id, "revoked"))
    assert events(engine, req.id) == 1
    assert repo.get(req.id).decided_at == T0  # type: ignore[union-attr]


def test_the_open_limit_counts_open_requests_per_requester_and_project(
        repo: SqlReleaseRepository, engine: Engine) -> None:
    add(repo, state=R.IN_REVIEW)
    add(repo, state=R.RETURNED)
    add(repo, state=R.REJECTED)  # decided: not open
    add(repo, requester="amy")  # another requester
    add(repo, project="p2")  # another project
    fresh = ReleaseRequest(id=uuid.uuid4().hex, run_id="run", project="p1",
                           requester_sub="dev|alice", requester_name="alice",
                           justification="why", state=R.SUBMITTED, files=[], created_at=T0)
    submit = AuditEvent(action="release.submit", actor="dev|alice", outcome="submitted",
                        target=fresh.id, at=T0)
    with pytest.raises(Conflict, match="limit is 2"):
        repo.add(fresh, submit, open_limit=2)
    assert repo.get(fresh.id) is None and events(engine, fresh.id) == 0  # rolled back
    repo.add(fresh, submit, open_limit=3)
    assert repo.get(fresh.id) is not None and events(engine, fresh.id) == 1


def test_concurrent_adds_never_overshoot_the_open_limit(
        repo: SqlReleaseRepository) -> None:
    def one(_: int) -> bool:
        req = ReleaseRequest(id=uuid.uuid4().hex, run_id="run", project="p1",
                             requester_sub="dev|alice", requester_name="alice",
                             justification="why", state=R.SUBMITTED, files=[],
                             created_at=T0)
        try:
            repo.add(req, AuditEvent(action="release.submit", actor="dev|alice",
                                     outcome="submitted", target=req.id, at=T0),
                     open_limit=3)
        except Conflict:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(one, range(12)))
    assert added.count(True) == 3
