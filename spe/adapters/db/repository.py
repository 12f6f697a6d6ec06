"""The ``RunRepository`` and ``AuditLog`` ports on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, true, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from spe.adapters.db import audit_chain
from spe.adapters.db.audit_chain import ChainedEvent
from spe.adapters.db.tables import AuditRow, RunRow, RunTagRow, TaskRow
from spe.domain.models import (
    AuditEvent,
    OutputFile,
    Run,
    RunFilter,
    RunRequest,
    TaskLog,
    Visibility,
)
from spe.domain.states import FINAL_STATES, RunState


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC. Applied on write too: SQLite drops a datetime's offset when storing it, so a
    non-UTC time would otherwise come back as the wrong instant."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_run(row: RunRow) -> Run:
    return Run(
        id=row.id, owner_sub=row.owner_sub, owner_name=row.owner_name, project=row.project,
        state=RunState(row.state), request=RunRequest.from_wes(row.request),
        workflow_id=row.workflow_id, workflow_version=row.workflow_version,
        bundle_digest=row.bundle_digest, engine=row.engine,
        engine_options=dict(row.engine_options), created_at=utc(row.created_at) or row.created_at,
        start_time=utc(row.start_time), end_time=utc(row.end_time), exit_code=row.exit_code,
        handle=row.handle, cmd=tuple(row.cmd or ()), system_logs=list(row.system_logs or ()),
        outputs=[OutputFile(**o) for o in row.outputs or ()], seq=row.seq,
        purged_at=utc(row.purged_at),
    )


def _fill(row: RunRow, run: Run) -> None:
    """Everything but the state, which only ``add`` and ``transition`` write."""
    row.start_time, row.end_time = utc(run.start_time), utc(run.end_time)
    row.exit_code = run.exit_code
    row.handle = run.handle
    row.cmd = list(run.cmd)
    row.system_logs = list(run.system_logs)
    row.outputs = [{"path": o.path, "size": o.size, "sha256": o.sha256} for o in run.outputs]
    row.purged_at = utc(run.purged_at)


def _visible(visible: Visibility) -> ColumnElement[bool]:
    if visible.everything:
        return true()
    own = RunRow.owner_sub == visible.owner_sub
    return or_(own, RunRow.project.in_(visible.projects)) if visible.projects else own


def _to_task(row: TaskRow) -> TaskLog:
    return TaskLog(id=row.task_id, name=row.name, cmd=tuple(row.cmd or ()),
                   start_time=utc(row.start_time), end_time=utc(row.end_time),
                   exit_code=row.exit_code, system_logs=tuple(row.system_logs or ()))


class SqlRunRepository:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, run: Run, event: AuditEvent | None = None) -> Run:
        with self._sessions.begin() as s:
            row = RunRow(
                id=run.id, owner_sub=run.owner_sub, owner_name=run.owner_name,
                project=run.project, workflow_id=run.workflow_id,
                workflow_version=run.workflow_version, bundle_digest=run.bundle_digest,
                engine=run.engine, request=run.request.to_wes(),
                engine_options=run.engine_options, created_at=utc(run.created_at),
                state=run.state.value,
            )
            _fill(row, run)
            s.add(row)
            s.flush()
            for key, value in run.request.tags.items():
                s.add(RunTagRow(run_seq=row.seq, key=key, value=value))
            if event is not None:  # chained last: the chain's lock is held only to commit
                append_audit(s, event)
            run.seq = row.seq
        return run

    def get(self, run_id: str) -> Run | None:
        with self._sessions() as s:
            row = s.scalar(select(RunRow).where(RunRow.id == run_id))
            return _to_run(row) if row else None

    def save(self, run: Run) -> None:
        with self._sessions.begin() as s:
            row = s.scalar(select(RunRow).where(RunRow.id == run.id))
            if row is None:
                raise KeyError(run.id)
            _fill(row, run)

    def transition(self, run_id: str, from_states: frozenset[RunState], to: RunState,
                   at: datetime | None = None) -> bool:
        """Move to ``to`` only if the run is in one of ``from_states`` (compare-and-set)."""
        values: dict[str, object] = {"state": to.value}
        if to == RunState.RUNNING and at is not None:
            values["start_time"] = utc(at)
        if to in FINAL_STATES and at is not None:
            values["end_time"] = utc(at)
        with self._sessions.begin() as s:
            result = s.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.state.in_([f.value for f in from_states]))
                .values(**values)
            )
            return bool(getattr(result, "rowcount", 0))

    def page(self, visible: Visibility, flt: RunFilter, before_seq: int | None,
             limit: int) -> list[Run]:
        query = select(RunRow).where(_visible(visible))
        if before_seq is not None:
            query = query.where(RunRow.seq < before_seq)
        if flt.states:
            query = query.where(RunRow.state.in_([s.value for s in flt.states]))
        if flt.tags:  # drive from the tag index, so a rare or absent tag is cheap
            key, value = flt.tags[0]
            query = query.join(RunTagRow, RunTagRow.run_seq == RunRow.seq).where(
                RunTagRow.key == key, RunTagRow.value == value)
        for key, value in flt.tags[1:]:
            other = aliased(RunTagRow)
            query = query.where(exists().where(
                other.run_seq == RunRow.seq, other.key == key, other.value == value))
        query = query.order_by(RunRow.seq.desc()).limit(limit)
        with self._sessions() as s:
            return [_to_run(r) for r in s.scalars(query)]

    def state_counts(self, visible: Visibility) -> dict[str, int]:
        query = (select(RunRow.state, func.count()).where(_visible(visible))
                 .group_by(RunRow.state))
        with self._sessions() as s:
            return {state: int(n) for state, n in s.execute(query)}

    def active(self) -> list[Run]:
        query = (select(RunRow).where(RunRow.state.not_in([f.value for f in FINAL_STATES]))
                 .order_by(RunRow.seq))
        with self._sessions() as s:
            return [_to_run(r) for r in s.scalars(query)]

    def replace_tasks(self, run_id: str, tasks: list[TaskLog]) -> None:
        with self._sessions.begin() as s:
            seq = s.scalar(select(RunRow.seq).where(RunRow.id == run_id))
            if seq is None:
                return
            s.execute(delete(TaskRow).where(TaskRow.run_seq == seq))
            for i, t in enumerate(tasks):
                s.add(TaskRow(run_seq=seq, ordinal=i, task_id=t.id, name=t.name,
                              cmd=list(t.cmd), start_time=utc(t.start_time),
                              end_time=utc(t.end_time),
                              exit_code=t.exit_code, system_logs=list(t.system_logs)))

    def tasks(self, run_id: str, start: int, limit: int) -> list[TaskLog]:
        query = (select(TaskRow).join(RunRow, RunRow.seq == TaskRow.run_seq)
                 .where(RunRow.id == run_id, TaskRow.ordinal >= start)
                 .order_by(TaskRow.ordinal).limit(limit))
        with self._sessions() as s:
            return [_to_task(r) for r in s.scalars(query)]

    def task(self, run_id: str, task_id: str) -> TaskLog | None:
        query = (select(TaskRow).join(RunRow, RunRow.seq == TaskRow.run_seq)
                 .where(RunRow.id == run_id, TaskRow.task_id == task_id))
        with self._sessions() as s:
            row = s.scalar(query)
            return _to_task(row) if row else None


class SqlAuditLog:
    """The ``AuditLog`` port: a hash chain in ``audit_events`` (``audit_chain``), and the
    search behind ``GET /spe/v1/audit`` (``spe.services.audit.AuditStore``)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def append(self, event: AuditEvent) -> None:
        with self._sessions.begin() as s:
            append_audit(s, event)

    def search(self, *, action: str = "", actor: str = "", target: str = "",
               since: datetime | None = None, until: datetime | None = None,
               before_id: int | None = None, limit: int = 100) -> list[ChainedEvent]:
        """Matching events, newest (highest id) first; ``since`` inclusive, ``until``
        exclusive; empty strings match everything."""
        query = select(AuditRow).where(*_audit_filters(action, actor, target, since, until))
        if before_id is not None:
            query = query.where(AuditRow.id < before_id)
        with self._sessions() as s:
            return [audit_chain.chained(r)
                    for r in s.scalars(query.order_by(AuditRow.id.desc()).limit(limit))]


def _audit_filters(action: str, actor: str, target: str, since: datetime | None,
                   until: datetime | None) -> list[ColumnElement[bool]]:
    equal = [column == value for column, value in
             ((AuditRow.action, action), (AuditRow.actor, actor), (AuditRow.target, target))
             if value]
    if since is not None:
        equal.append(AuditRow.at >= utc(since))
    if until is not None:
        equal.append(AuditRow.at < utc(until))
    return equal


def append_audit(session: Session, event: AuditEvent) -> None:
    """Chain ``event`` onto the audit log inside ``session``'s transaction: the one way an
    audit row is written (it commits or rolls back with whatever else the transaction does;
    appends are serialised until then)."""
    audit_chain.append(session, _audit_row(event))


def _audit_row(event: AuditEvent) -> AuditRow:
    """An unchained row; ``audit_chain.append`` gives it its id and hashes."""
    return AuditRow(at=utc(event.at) or datetime.now(UTC), action=event.action,
                    actor=event.actor, outcome=event.outcome, target=event.target,
                    details=event.details)
