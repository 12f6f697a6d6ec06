"""The TaskLogRepository port's contract (``spe/domain/ports.py``), checked on SQLite and on
a real PostgreSQL server (``conftest.db_url``). Task logs hang off a run, so each test adds
its runs through the run repository first."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.task_logs import SqlTaskLogRepository
from spe.domain.models import Run, RunRequest, TaskLog
from spe.domain.ports import TaskLogRepository
from spe.domain.states import RunState

CEST = timezone(timedelta(hours=2))  # a non-UTC offset: must come back as the same instant
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
UNKNOWN_RUN = "0" * 32


@pytest.fixture
def runs(sessions: sessionmaker[Session]) -> SqlRunRepository:
    return SqlRunRepository(sessions)


@pytest.fixture
def logs(sessions: sessionmaker[Session]) -> TaskLogRepository:
    return SqlTaskLogRepository(sessions)


def make_run(owner: str = "alice") -> Run:
    request = RunRequest(workflow_url="sleepy@1.0.0", workflow_type="SMK",
                         workflow_type_version="9")
    return Run(id=uuid.uuid4().hex, owner_sub=f"dev|{owner}", owner_name=owner,
               state=RunState.RUNNING, request=request, workflow_id="sleepy",
               workflow_version="1.0.0", bundle_digest="sha256:" + "ab" * 32,
               engine="snakemake", engine_options={}, created_at=T0)


def make_tasks(n: int, prefix: str = "job") -> list[TaskLog]:
    return [TaskLog(id=f"{prefix}{i}", name=f"rule_{i}", cmd=("python", "-c", f"print({i})"),
                    start_time=datetime(2026, 3, 1, 14, i, tzinfo=CEST),
                    end_time=T0 + timedelta(minutes=i, seconds=30),
                    exit_code=i % 2, system_logs=(f"log {i}", "✓"))
            for i in range(n)]


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


def test_replace_tasks_then_tasks_and_task_round_trip(runs: SqlRunRepository,
                                                      logs: TaskLogRepository) -> None:
    run = runs.add(make_run())
    tasks = [*make_tasks(5), TaskLog(id="bare", name="bare")]
    logs.replace_tasks(run.id, tasks)

    got = logs.tasks(run.id, 0, 100)
    assert got == tasks  # in the order given
    for task in got[:5]:
        assert_utc(task.start_time)
        assert_utc(task.end_time)
    assert got[5] == TaskLog(id="bare", name="bare")
    assert logs.task(run.id, "job3") == tasks[3]
    assert logs.task(run.id, "bare") == tasks[5]
    assert logs.task(run.id, "missing") is None


def test_the_order_given_is_kept_even_when_it_is_not_the_id_order(
        runs: SqlRunRepository, logs: TaskLogRepository) -> None:
    run = runs.add(make_run())
    tasks = [TaskLog(id=i, name=f"t{i}") for i in ("10", "2", "b", "a", "1")]
    logs.replace_tasks(run.id, tasks)
    assert [t.id for t in logs.tasks(run.id, 0, 100)] == ["10", "2", "b", "a", "1"]


def test_tasks_pages_by_start_and_limit(runs: SqlRunRepository,
                                        logs: TaskLogRepository) -> None:
    run = runs.add(make_run())
    tasks = make_tasks(7)
    logs.replace_tasks(run.id, tasks)
    assert logs.tasks(run.id, 0, 3) == tasks[:3]
    assert logs.tasks(run.id, 3, 3) == tasks[3:6]
    assert logs.tasks(run.id, 6, 3) == tasks[6:]
    assert logs.tasks(run.id, 7, 3) == []


def test_replace_tasks_replaces_the_previous_list(runs: SqlRunRepository,
                                                  logs: TaskLogRepository) -> None:
    run = runs.add(make_run())
    logs.replace_tasks(run.id, make_tasks(5))
    newer = make_tasks(2, prefix="new")
    logs.replace_tasks(run.id, newer)
    assert logs.tasks(run.id, 0, 100) == newer
    assert logs.task(run.id, "job0") is None
    logs.replace_tasks(run.id, [])
    assert logs.tasks(run.id, 0, 100) == []


def test_task_logs_belong_to_their_run(runs: SqlRunRepository,
                                       logs: TaskLogRepository) -> None:
    one, two = runs.add(make_run()), runs.add(make_run("bob"))
    logs.replace_tasks(one.id, make_tasks(3))
    other = [replace(t, name=f"other_{t.name}") for t in make_tasks(2)]  # same task ids
    logs.replace_tasks(two.id, other)
    assert logs.tasks(one.id, 0, 100) == make_tasks(3)
    assert logs.tasks(two.id, 0, 100) == other
    assert logs.task(two.id, "job0") == other[0]
    assert logs.tasks(UNKNOWN_RUN, 0, 100) == []
    assert logs.task(UNKNOWN_RUN, "job0") is None


def test_tasks_of_several_runs_in_one_call(runs: SqlRunRepository,
                                           logs: TaskLogRepository) -> None:
    one, two, empty = runs.add(make_run()), runs.add(make_run("bob")), runs.add(make_run())
    logs.replace_tasks(one.id, make_tasks(3))
    logs.replace_tasks(two.id, make_tasks(1))
    found = logs.tasks_of([two.id, one.id, empty.id, UNKNOWN_RUN], 2)
    assert found == {one.id: make_tasks(2), two.id: make_tasks(1), empty.id: [],
                     UNKNOWN_RUN: []}
    assert logs.tasks_of([], 5) == {}


def test_replace_tasks_of_an_unknown_run_stores_nothing(runs: SqlRunRepository,
                                                        logs: TaskLogRepository) -> None:
    logs.replace_tasks(UNKNOWN_RUN, make_tasks(3))
    assert logs.tasks(UNKNOWN_RUN, 0, 100) == []
    assert logs.task(UNKNOWN_RUN, "job0") is None
    run = runs.add(make_run())  # a run added later starts without tasks
    assert logs.tasks(run.id, 0, 100) == []


def test_a_reader_sees_the_old_list_or_the_new_one_never_a_mix(
        runs: SqlRunRepository, logs: TaskLogRepository) -> None:
    run = runs.add(make_run())
    short, long = make_tasks(2, prefix="a"), make_tasks(6, prefix="b")
    logs.replace_tasks(run.id, short)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(40):
                logs.replace_tasks(run.id, long if i % 2 == 0 else short)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    while not stop.is_set():
        seen.append(logs.tasks(run.id, 0, 100))
    thread.join(timeout=60)
    assert errors == []
    assert seen, "the reader never read"
    assert all(got in (short, long) for got in seen), [len(g) for g in seen]
