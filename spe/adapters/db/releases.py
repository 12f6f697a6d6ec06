"""The ``ReleaseRepository`` port on SQLAlchemy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.repository import append_audit, utc
from spe.adapters.db.tables import ReleaseRequestRow, ReleaseVoteRow
from spe.domain.airlock import (
    CARRIED_ON,
    OPEN,
    Decision,
    ReleaseCursor,
    ReleaseFilter,
    ReleaseRequest,
    ReleaseState,
    RequestedFile,
    Vote,
    WorkClaim,
)
from spe.domain.errors import Conflict
from spe.domain.models import JSON, AuditEvent

Row = ReleaseRequestRow
NO_CLAIM: dict[str, Any] = {"work_claim": None, "work_claim_until": None}


def _to_request(row: Row) -> ReleaseRequest:
    return ReleaseRequest(
        id=row.id, run_id=row.run_id, project=row.project, requester_sub=row.requester_sub,
        requester_name=row.requester_name, justification=row.justification,
        state=ReleaseState(row.state), files=[RequestedFile(**f) for f in row.files],
        created_at=utc(row.created_at) or row.created_at, findings=list(row.findings or ()),
        round=row.round, reason=row.reason or "", decided_at=utc(row.decided_at),
        released_at=utc(row.released_at), revoked_at=utc(row.revoked_at), crate=row.crate)


def _fill(row: Row, req: ReleaseRequest) -> None:
    """Everything but the state (``transition`` writes that) and the work claim."""
    row.files = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in req.files]
    row.findings = list(req.findings)
    row.round, row.reason, row.crate = req.round, req.reason, req.crate
    row.decided_at, row.released_at = utc(req.decided_at), utc(req.released_at)
    row.revoked_at = utc(req.revoked_at)


def _free(now: datetime) -> ColumnElement[bool]:
    """Nobody holds a live work claim."""
    return or_(Row.work_claim.is_(None), Row.work_claim_until.is_(None),
               Row.work_claim_until < utc(now))


def _update(s: Session, request_id: str, where: list[ColumnElement[bool]],
            values: dict[str, Any], event: AuditEvent | None = None) -> bool:
    """One guarded UPDATE of ``request_id``; ``event`` is appended only if it wrote."""
    result = s.execute(update(Row).where(Row.id == request_id, *where).values(**values))
    if not getattr(result, "rowcount", 0):
        return False
    if event is not None:
        append_audit(s, event)
    return True


def _selected(flt: ReleaseFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a listing."""
    where: list[ColumnElement[bool]] = []
    if not flt.everything:
        mine = and_(Row.requester_sub == flt.sub, Row.project.in_(flt.member_of)) \
            if flt.own and flt.member_of else false()
        theirs = Row.project.in_(flt.projects) if flt.projects else false()
        where.append(or_(mine, theirs))
    if flt.not_own:
        where.append(Row.requester_sub != flt.sub)
    if flt.state is not None:
        where.append(Row.state == flt.state.value)
    return where


def _after(cursor: ReleaseCursor | None) -> ColumnElement[bool]:
    """Strictly after ``cursor`` in the order newest first (time, then id, descending)."""
    if cursor is None:
        return true()
    at = utc(cursor.created_at)
    return or_(Row.created_at < at, and_(Row.created_at == at, Row.id < cursor.id))


class SqlReleaseRepository:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, request: ReleaseRequest, event: AuditEvent | None = None,
            claim: WorkClaim | None = None, open_limit: int | None = None) -> None:
        with self._sessions.begin() as s:
            if event is not None:  # first: the chain's lock serialises the count below
                append_audit(s, event)
            if open_limit is not None:
                _refuse_over_limit(s, request, open_limit)
            row = Row(
                id=request.id, run_id=request.run_id, project=request.project,
                requester_sub=request.requester_sub, requester_name=request.requester_name,
                justification=request.justification, state=request.state.value,
                created_at=utc(request.created_at),
                work_claim=claim.token if claim else None,
                work_claim_until=utc(claim.until) if claim else None)
            _fill(row, request)
            s.add(row)

    def get(self, request_id: str) -> ReleaseRequest | None:
        with self._sessions() as s:
            row = s.get(Row, request_id)
            return _to_request(row) if row else None

    def save(self, request: ReleaseRequest) -> None:
        with self._sessions.begin() as s:
            row = s.get(Row, request.id)
            if row is None:
                raise KeyError(request.id)
            _fill(row, request)

    def transition(self, request_id: str, from_states: frozenset[ReleaseState],
                   to: ReleaseState, event: AuditEvent | None = None) -> bool:
        values: dict[str, Any] = {"state": to.value}
        if to not in CARRIED_ON:
            values.update(NO_CLAIM)
        with self._sessions.begin() as s:
            return _update(s, request_id, [Row.state.in_([f.value for f in from_states])],
                           values, event)

    def decide(self, request_id: str, outcome: ReleaseState, at: datetime,
               event: AuditEvent) -> bool:
        """IN_REVIEW -> ``outcome`` with the decision time and ``event``, at most once."""
        values: dict[str, Any] = {"state": outcome.value, "decided_at": utc(at)}
        with self._sessions.begin() as s:
            return _update(s, request_id, [Row.state == ReleaseState.IN_REVIEW.value],
                           values, event)

    def claim(self, request_id: str, states: frozenset[ReleaseState], claim: WorkClaim,
              now: datetime) -> bool:
        """Take the work claim of a request in ``states`` unless a live one is held."""
        with self._sessions.begin() as s:
            return _update(s, request_id, [Row.state.in_([x.value for x in states]),
                                           _free(now)],
                           {"work_claim": claim.token, "work_claim_until": utc(claim.until)})

    def unclaim(self, request_id: str, token: str) -> None:
        with self._sessions.begin() as s:
            _update(s, request_id, [Row.work_claim == token], NO_CLAIM)

    def postpone(self, request_id: str, token: str, until: datetime, reason: str) -> bool:
        """A failed attempt of the holder: ``reason`` on the request, nobody takes the step
        before ``until``. False (nothing written) if ``token`` no longer holds the claim."""
        with self._sessions.begin() as s:
            return _update(s, request_id, [Row.work_claim == token],
                           {"reason": reason, "work_claim_until": utc(until)})

    def finish_release(self, request_id: str, token: str, released_at: datetime,
                       crate: JSON, event: AuditEvent) -> bool:
        """APPROVED -> RELEASED with the release time and crate, the reason cleared and
        ``event`` appended, in one transaction; only while ``token`` holds the claim."""
        values = {"state": ReleaseState.RELEASED.value, "released_at": utc(released_at),
                  "crate": crate, "reason": "", **NO_CLAIM}
        with self._sessions.begin() as s:
            return _update(s, request_id, [Row.state == ReleaseState.APPROVED.value,
                                           Row.work_claim == token], values, event)

    def waiting(self, states: frozenset[ReleaseState], now: datetime,
                limit: int) -> list[str]:
        """Ids of requests in ``states`` that nobody holds, oldest first."""
        query = (select(Row.id).where(Row.state.in_([x.value for x in states]), _free(now))
                 .order_by(Row.created_at, Row.id).limit(limit))
        with self._sessions() as s:
            return list(s.scalars(query))

    def page(self, flt: ReleaseFilter, after: ReleaseCursor | None,
             limit: int) -> list[ReleaseRequest]:
        query = (select(Row).where(*_selected(flt), _after(after))
                 .order_by(Row.created_at.desc(), Row.id.desc()).limit(limit))
        with self._sessions() as s:
            return [_to_request(r) for r in s.scalars(query)]

    def add_vote(self, request_id: str, vote: Vote) -> None:
        try:
            with self._sessions.begin() as s:
                s.add(ReleaseVoteRow(
                    request_id=request_id, round=vote.round, reviewer_sub=vote.reviewer_sub,
                    reviewer_name=vote.reviewer_name, path=vote.path,
                    decision=vote.decision.value, reason=vote.reason, at=utc(vote.at)))
        except IntegrityError as exc:
            raise Conflict(f"you have already voted on {vote.path!r}") from exc

    def votes(self, request_id: str, round_: int) -> list[Vote]:
        query = (select(ReleaseVoteRow)
                 .where(ReleaseVoteRow.request_id == request_id,
                        ReleaseVoteRow.round == round_)
                 .order_by(ReleaseVoteRow.id))
        with self._sessions() as s:
            return [Vote(reviewer_sub=r.reviewer_sub, reviewer_name=r.reviewer_name,
                         path=r.path, decision=Decision(r.decision), reason=r.reason,
                         at=utc(r.at) or r.at, round=r.round) for r in s.scalars(query)]


def _refuse_over_limit(s: Session, request: ReleaseRequest, limit: int) -> None:
    query = (select(func.count()).select_from(Row)
             .where(Row.project == request.project,
                    Row.requester_sub == request.requester_sub,
                    Row.state.in_([state.value for state in OPEN])))
    if (s.scalar(query) or 0) >= limit:
        raise Conflict(f"you already have {limit} open release requests in project "
                       f"{request.project} (the limit is {limit}); wait for decisions or "
                       "withdraw returned requests first")
