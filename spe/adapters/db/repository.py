"""The ``RunRepository`` and ``AuditLog`` ports on SQLAlchemy (SQLite or PostgreSQL); task
logs are ``spe.adapters.db.task_logs``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db import audit_chain
from spe.adapters.db.audit_chain import ChainedEvent
from spe.adapters.db.listing import TAG_WINDOW, WALK_COUNT_CAP, Listing, visible_runs
from spe.adapters.db.tables import AuditRow, RunRow, RunTagRow, SubmissionKeyRow
from spe.domain.models import (
    JSON,
    TASK,
    AuditEvent,
    OutputFile,
    Run,
    RunEnding,
    RunFilter,
    RunRequest,
    SubmissionKey,
    Visibility,
)
from spe.domain.ports import SubmissionKeyTaken
from spe.domain.run_summary import RunSummary
from spe.domain.states import FINAL_STATES, RunState


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC. Applied on write too: SQLite drops a datetime's offset when storing it, so a
    non-UTC time would otherwise come back as the wrong instant."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _request(row: RunRow) -> RunRequest:
    if row.kind == TASK:  # a TES task: its tags, in the request's place
        return RunRequest("", "TES", "1.1", tags=dict(row.request.get("tags") or {}))
    return RunRequest.from_wes(row.request)


def _to_run(row: RunRow) -> Run:
    return Run(
        id=row.id, owner_sub=row.owner_sub, owner_name=row.owner_name, project=row.project,
        state=RunState(row.state), request=_request(row), kind=row.kind, name=row.name,
        task=dict(row.request) if row.kind == TASK else None,
        workflow_id=row.workflow_id, workflow_version=row.workflow_version,
        bundle_digest=row.bundle_digest, engine=row.engine,
        engine_options=dict(row.engine_options), created_at=utc(row.created_at) or row.created_at,
        start_time=utc(row.start_time), end_time=utc(row.end_time), exit_code=row.exit_code,
        handle=row.handle, cmd=tuple(row.cmd or ()), system_logs=list(row.system_logs or ()),
        outputs=[OutputFile(**o) for o in row.outputs or ()], seq=row.seq,
        purged_at=utc(row.purged_at),
    )


def _fill(row: RunRow, run: Run) -> None:
    """The fields a new run is stored with, besides its identity and request."""
    row.start_time, row.end_time = utc(run.start_time), utc(run.end_time)
    row.exit_code = run.exit_code
    row.handle = run.handle
    row.cmd = list(run.cmd)
    row.system_logs = list(run.system_logs)
    row.outputs = _outputs(run.outputs)
    row.purged_at = utc(run.purged_at)


def _outputs(outputs: list[OutputFile]) -> list[dict[str, Any]]:
    return [{"path": o.path, "size": o.size, "sha256": o.sha256} for o in outputs]


def _guarded(s: Session, run_id: str, where: list[ColumnElement[bool]],
             values: dict[str, Any], note: str = "") -> bool:
    """One UPDATE of ``run_id`` if ``where`` holds, and ``note`` appended to its system
    logs in the same transaction. The UPDATE comes first: it takes the row's write lock, so
    the logs read after it are the latest and no other writer's line is lost."""
    result = s.execute(update(RunRow).where(RunRow.id == run_id, *where).values(**values))
    if not getattr(result, "rowcount", 0):
        return False
    if note:
        logs = s.scalar(select(RunRow.system_logs).where(RunRow.id == run_id)) or []
        s.execute(update(RunRow).where(RunRow.id == run_id)
                  .values(system_logs=[*logs, note]))
    return True


class SqlRunRepository:
    # the listing's walks (spe.adapters.db.listing); tests lower the window to take the
    # fallback walk, and set the cap to 0 to take the caller's runs
    tag_window = TAG_WINDOW
    count_cap = WALK_COUNT_CAP

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, run: Run, event: AuditEvent | None = None,
            key: SubmissionKey | None = None) -> Run:
        try:
            with self._sessions.begin() as s:
                if key is not None:
                    _take_key(s, key, run.id)
                self._insert(s, run)
                if event is not None:  # chained last: the chain's lock is held only to commit
                    append_audit(s, event)
        except IntegrityError:
            taken = self.submission_key(key.owner_sub, key.key, key.since) if key else None
            if taken is None:
                raise
            raise SubmissionKeyTaken(*taken) from None
        return run

    @staticmethod
    def _insert(s: Session, run: Run) -> None:
        row = RunRow(
            id=run.id, owner_sub=run.owner_sub, owner_name=run.owner_name,
            project=run.project, workflow_id=run.workflow_id,
            workflow_version=run.workflow_version, bundle_digest=run.bundle_digest,
            engine=run.engine,
            request=run.task if run.is_task and run.task is not None else run.request.to_wes(),
            engine_options=run.engine_options, created_at=utc(run.created_at),
            state=run.state.value, kind=run.kind, name=run.name,
        )
        _fill(row, run)
        s.add(row)
        s.flush()
        for tag, value in run.request.tags.items():
            s.add(RunTagRow(run_seq=row.seq, key=tag, value=value))
        run.seq = row.seq

    def submission_key(self, owner_sub: str, key: str,
                       since: datetime) -> tuple[str, str] | None:
        """(run id, request digest) of ``key`` if ``owner_sub`` used it at ``since`` or
        later, else None."""
        query = select(SubmissionKeyRow).where(
            SubmissionKeyRow.owner_sub == owner_sub, SubmissionKeyRow.key == key,
            SubmissionKeyRow.created_at >= utc(since))
        with self._sessions() as s:
            row = s.scalar(query)
            return (row.run_id, row.request_digest) if row else None

    def prune_submission_keys(self, before: datetime) -> int:
        with self._sessions.begin() as s:
            result = s.execute(delete(SubmissionKeyRow)
                               .where(SubmissionKeyRow.created_at < utc(before)))
            return int(getattr(result, "rowcount", 0) or 0)

    def get(self, run_id: str) -> Run | None:
        with self._sessions() as s:
            row = s.scalar(select(RunRow).where(RunRow.id == run_id))
            return _to_run(row) if row else None

    def record_handle(self, run_id: str, handle: JSON, cmd: tuple[str, ...] | None = None,
                      note: str = "") -> bool:
        """Store the executor's handle (and the command, and a system-log line) of a run
        that has not ended. False when it has ended meanwhile."""
        values: dict[str, Any] = {"handle": handle}
        if cmd is not None:
            values["cmd"] = list(cmd)
        with self._sessions.begin() as s:
            return _guarded(s, run_id, [RunRow.state.not_in([f.value for f in FINAL_STATES])],
                            values, note)

    def claim_finish(self, run_id: str, from_state: RunState, token: str, now: datetime,
                     until: datetime) -> bool:
        """Claim the right to finish ``run_id`` while it is ``from_state``, unless another
        live claim (one whose ``until`` has not passed) holds it. Compare-and-set."""
        free = or_(RunRow.finish_claim.is_(None), RunRow.finish_claim_until < utc(now))
        with self._sessions.begin() as s:
            return _guarded(s, run_id, [RunRow.state == from_state.value, free],
                            {"finish_claim": token, "finish_claim_until": utc(until)})

    def release_finish(self, run_id: str, token: str) -> None:
        with self._sessions.begin() as s:
            _guarded(s, run_id, [RunRow.finish_claim == token],
                     {"finish_claim": None, "finish_claim_until": None})

    def finish(self, run_id: str, token: str, from_state: RunState,
               ending: RunEnding) -> bool:
        """Move the run from ``from_state`` to ``ending.state`` with its end time, exit code,
        outputs and a system-log line, all in one UPDATE, if ``token`` still holds the
        finish claim. False (and nothing written) otherwise."""
        values: dict[str, Any] = {
            "state": ending.state.value, "end_time": utc(ending.at),
            "exit_code": ending.exit_code, "outputs": _outputs(ending.outputs),
            "finish_claim": None, "finish_claim_until": None}
        if ending.exit_code is not None:  # it ran: a run whose end was seen before its
            # start (a quick job, a starter killed midway) gets the end as its start
            values["start_time"] = func.coalesce(RunRow.start_time, utc(ending.at))
        with self._sessions.begin() as s:
            return _guarded(s, run_id, [RunRow.state == from_state.value,
                                        RunRow.finish_claim == token], values, ending.note)

    def mark_purged(self, run_id: str, at: datetime, note: str) -> bool:
        """Record the purge of a run (once: False when it was already purged)."""
        with self._sessions.begin() as s:
            return _guarded(s, run_id, [RunRow.purged_at.is_(None)],
                            {"purged_at": utc(at)}, note)

    def transition(self, run_id: str, from_states: frozenset[RunState], to: RunState,
                   at: datetime | None = None) -> bool:
        """Move to ``to`` only if the run is in one of ``from_states`` (compare-and-set)."""
        values: dict[str, object] = {"state": to.value}
        if to == RunState.RUNNING and at is not None:
            values["start_time"] = utc(at)
        if to in FINAL_STATES and at is not None:
            values["end_time"] = utc(at)
        with self._sessions.begin() as s:
            return _guarded(s, run_id, [RunRow.state.in_([f.value for f in from_states])],
                            values)

    def page(self, visible: Visibility, flt: RunFilter, before_seq: int | None,
             limit: int) -> list[Run]:
        with self._sessions() as s:
            listing = Listing(s.get_bind().dialect.name == "sqlite", self.tag_window,
                               self.count_cap, s.scalar, lambda q: list(s.scalars(q)))
            return [_to_run(r) for r in listing.rows(select(RunRow), visible, flt,
                                                     before_seq, limit)]

    def summaries(self, visible: Visibility, flt: RunFilter, before_seq: int | None,
                  limit: int) -> list[RunSummary]:
        """``page``'s runs from a narrow query: seven columns of the page, then the tags
        of those runs from ``run_tags`` (one indexed IN query); no ORM objects, no JSON."""
        with self._sessions() as s:
            conn = s.connection()  # core execution: the ORM layer adds nothing to rows
            listing = Listing(conn.dialect.name == "sqlite", self.tag_window,
                               self.count_cap, conn.scalar, lambda q: list(conn.execute(q).all()))
            rows = listing.rows(select(*_SUMMARY_COLUMNS), visible, flt, before_seq, limit)
            tags: dict[int, dict[str, str]] = {row[0]: {} for row in rows}
            if rows:
                for seq, key, value in conn.execute(_TAGS_OF, {"seqs": list(tags)}):
                    tags[seq][key] = value
        return [_summary(row, tags[row[0]]) for row in rows]

    def summary(self, run_id: str) -> RunSummary | None:
        with self._sessions() as s:
            row = s.connection().execute(_SUMMARY_OF, {"run_id": run_id}).first()
        return _summary(row, {}) if row else None

    def state_counts(self, visible: Visibility) -> dict[str, int]:
        query = (select(RunRow.state, func.count()).where(visible_runs(visible))
                 .group_by(RunRow.state))
        with self._sessions() as s:
            return {state: int(n) for state, n in s.execute(query)}

    def active(self) -> list[Run]:
        query = (select(RunRow).where(RunRow.state.not_in([f.value for f in FINAL_STATES]))
                 .order_by(RunRow.seq))
        with self._sessions() as s:
            return [_to_run(r) for r in s.scalars(query)]


_SUMMARY_COLUMNS = (RunRow.seq, RunRow.id, RunRow.owner_sub, RunRow.project, RunRow.state,
                    RunRow.start_time, RunRow.end_time, RunRow.workflow_id,
                    RunRow.workflow_version, RunRow.kind)
_SUMMARY_OF = select(*_SUMMARY_COLUMNS).where(RunRow.id == bindparam("run_id"))


_TAGS_OF = select(RunTagRow.run_seq, RunTagRow.key, RunTagRow.value).where(
    RunTagRow.run_seq.in_(bindparam("seqs", expanding=True)))


def _summary(row: Row[Any], tags: dict[str, str]) -> RunSummary:
    seq, run_id, owner_sub, project, state, start, end, workflow, version, kind = row
    return RunSummary(run_id, owner_sub, project, RunState(state), utc(start), utc(end), seq,
                      tags, f"{workflow}@{version}", kind)


def _take_key(s: Session, key: SubmissionKey, run_id: str) -> None:
    """Record ``key`` for ``run_id``, replacing an expired record of it. A live record of
    the same key fails the transaction (IntegrityError on the primary key)."""
    s.execute(delete(SubmissionKeyRow).where(
        SubmissionKeyRow.owner_sub == key.owner_sub, SubmissionKeyRow.key == key.key,
        SubmissionKeyRow.created_at < utc(key.since)))
    s.add(SubmissionKeyRow(owner_sub=key.owner_sub, key=key.key,
                           request_digest=key.request_digest, run_id=run_id,
                           created_at=utc(key.at)))
    s.flush()


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
