"""The ``TaskLogRepository`` port on SQLAlchemy (SQLite or PostgreSQL): one row per task,
keyed by the run's ``seq`` and the task's position in the engine's list."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.repository import utc
from spe.adapters.db.tables import RunRow, TaskRow
from spe.domain.models import TaskLog


def _to_task(row: TaskRow) -> TaskLog:
    return TaskLog(id=row.task_id, name=row.name, cmd=tuple(row.cmd or ()),
                   start_time=utc(row.start_time), end_time=utc(row.end_time),
                   exit_code=row.exit_code, system_logs=tuple(row.system_logs or ()))


def _to_row(run_seq: int, ordinal: int, task: TaskLog) -> TaskRow:
    return TaskRow(run_seq=run_seq, ordinal=ordinal, task_id=task.id, name=task.name,
                   cmd=list(task.cmd), start_time=utc(task.start_time),
                   end_time=utc(task.end_time), exit_code=task.exit_code,
                   system_logs=list(task.system_logs))


class SqlTaskLogRepository:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def replace_tasks(self, run_id: str, tasks: list[TaskLog]) -> None:
        with self._sessions.begin() as s:
            seq = s.scalar(select(RunRow.seq).where(RunRow.id == run_id))
            if seq is None:
                return
            s.execute(delete(TaskRow).where(TaskRow.run_seq == seq))
            s.add_all(_to_row(seq, i, task) for i, task in enumerate(tasks))

    def tasks(self, run_id: str, start: int, limit: int) -> list[TaskLog]:
        query = (select(TaskRow).join(RunRow, RunRow.seq == TaskRow.run_seq)
                 .where(RunRow.id == run_id, TaskRow.ordinal >= start)
                 .order_by(TaskRow.ordinal).limit(limit))
        with self._sessions() as s:
            return [_to_task(r) for r in s.scalars(query)]

    def tasks_of(self, run_ids: list[str], limit: int) -> dict[str, list[TaskLog]]:
        """The first ``limit`` tasks of each run, in one query (a listing page)."""
        found: dict[str, list[TaskLog]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        query = (select(RunRow.id, TaskRow).join(RunRow, RunRow.seq == TaskRow.run_seq)
                 .where(RunRow.id.in_(run_ids), TaskRow.ordinal < limit)
                 .order_by(TaskRow.run_seq, TaskRow.ordinal))
        with self._sessions() as s:
            for run_id, row in s.execute(query):
                found[run_id].append(_to_task(row))
        return found

    def task(self, run_id: str, task_id: str) -> TaskLog | None:
        query = (select(TaskRow).join(RunRow, RunRow.seq == TaskRow.run_seq)
                 .where(RunRow.id == run_id, TaskRow.task_id == task_id))
        with self._sessions() as s:
            row = s.scalar(query)
            return _to_task(row) if row else None
