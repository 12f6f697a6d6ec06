"""The ``ReleaseRepository`` port on SQLAlchemy."""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.repository import append_audit, utc
from spe.adapters.db.tables import ReleaseRequestRow, ReleaseVoteRow
from spe.domain.airlock import Decision, ReleaseRequest, ReleaseState, RequestedFile, Vote
from spe.domain.errors import Conflict
from spe.domain.models import AuditEvent
from spe.domain.ports import VISIBLE_LIMIT


def _to_request(row: ReleaseRequestRow) -> ReleaseRequest:
    return ReleaseRequest(
        id=row.id, run_id=row.run_id, project=row.project, requester_sub=row.requester_sub,
        requester_name=row.requester_name, justification=row.justification,
        state=ReleaseState(row.state), files=[RequestedFile(**f) for f in row.files],
        created_at=utc(row.created_at) or row.created_at, findings=list(row.findings or ()),
        round=row.round, reason=row.reason or "", decided_at=utc(row.decided_at),
        released_at=utc(row.released_at), revoked_at=utc(row.revoked_at), crate=row.crate)


def _fill(row: ReleaseRequestRow, req: ReleaseRequest) -> None:
    """Everything but the state (``transition`` writes that)."""
    row.files = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in req.files]
    row.findings = list(req.findings)
    row.round, row.reason, row.crate = req.round, req.reason, req.crate
    row.decided_at, row.released_at = utc(req.decided_at), utc(req.released_at)
    row.revoked_at = utc(req.revoked_at)


class SqlReleaseRepository:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, request: ReleaseRequest, event: AuditEvent | None = None) -> None:
        with self._sessions.begin() as s:
            row = ReleaseRequestRow(
                id=request.id, run_id=request.run_id, project=request.project,
                requester_sub=request.requester_sub, requester_name=request.requester_name,
                justification=request.justification, state=request.state.value,
                created_at=utc(request.created_at))
            _fill(row, request)
            s.add(row)
            if event is not None:
                append_audit(s, event)

    def get(self, request_id: str) -> ReleaseRequest | None:
        with self._sessions() as s:
            row = s.get(ReleaseRequestRow, request_id)
            return _to_request(row) if row else None

    def save(self, request: ReleaseRequest) -> None:
        with self._sessions.begin() as s:
            row = s.get(ReleaseRequestRow, request.id)
            if row is None:
                raise KeyError(request.id)
            _fill(row, request)

    def transition(self, request_id: str, from_states: frozenset[ReleaseState],
                   to: ReleaseState) -> bool:
        with self._sessions.begin() as s:
            result = s.execute(
                update(ReleaseRequestRow)
                .where(ReleaseRequestRow.id == request_id,
                       ReleaseRequestRow.state.in_([f.value for f in from_states]))
                .values(state=to.value))
            return bool(getattr(result, "rowcount", 0))

    def visible(self, requester_sub: str, review_projects: tuple[str, ...],
                everything: bool) -> list[ReleaseRequest]:
        query = select(ReleaseRequestRow)
        if not everything:
            query = query.where(or_(ReleaseRequestRow.requester_sub == requester_sub,
                                    ReleaseRequestRow.project.in_(review_projects)))
        query = query.order_by(ReleaseRequestRow.created_at.desc()).limit(VISIBLE_LIMIT)
        with self._sessions() as s:
            rows = s.scalars(query)
            return [_to_request(r) for r in rows]

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
