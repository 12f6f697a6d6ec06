"""The rule for a start step abandoned by a dead worker (``recover_stale_starts``) and the
start leases that tell a live step from an abandoned one; a real SQLite store and the
shipped catalog, on the fake executor (no Redis needed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spe.adapters.catalog import load_catalog
from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.task_logs import SqlTaskLogRepository
from spe.adapters.queue.inline import NullDispatcher
from spe.domain.models import JSON, Run, RunRequest
from spe.domain.ports import ExecutionSpec
from spe.domain.states import RunState
from spe.services.execution import START_LEASE, Execution
from tests.fakes import FakeExecutor, FakeProcess, SleepEngine
from tests.helpers import ROOT

S = RunState
LEASE = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def repo(tmp_path: Path) -> SqlRunRepository:
    url = f"sqlite:///{tmp_path / 'spe.db'}"
    upgrade(url)
    return SqlRunRepository(make_sessions(make_engine(url)))


def _execution(repo: SqlRunRepository, tmp_path: Path, executor: FakeExecutor,
               clock: Clock | None = None, lease: float = LEASE) -> Execution:
    catalog, bundles = load_catalog(ROOT / "workflows")
    return Execution(repo=repo, task_logs=SqlTaskLogRepository(repo._sessions),
                     catalog=catalog, bundles=bundles,
                     engines={"snakemake": SleepEngine()}, executor=executor,
                     runs_dir=tmp_path / "runs", start_lease_seconds=lease,
                     **({"clock": clock} if clock else {}))


def _run(repo: SqlRunRepository, run_id: str, state: RunState, created: datetime) -> Run:
    entry = load_catalog(ROOT / "workflows")[0].resolve("tsv-summary")
    return repo.add(Run(
        id=run_id, owner_sub="dev|alice", owner_name="alice", state=state,
        request=RunRequest("tsv-summary", "SMK", "9"), workflow_id=entry.id,
        workflow_version=entry.version, bundle_digest=entry.bundle_digest,
        engine="snakemake", engine_options={}, created_at=created))


def _abandoned(repo: SqlRunRepository, ex: Execution, clock: Clock, run_id: str) -> None:
    """A run whose worker won QUEUED -> INITIALIZING, took the lease and died."""
    _run(repo, run_id, S.QUEUED, clock())
    ex.touch_start_lease(run_id)
    assert repo.transition(run_id, frozenset({S.QUEUED}), S.INITIALIZING)


def _state(repo: SqlRunRepository, run_id: str) -> RunState:
    run = repo.get(run_id)
    assert run is not None
    return run.state


def test_a_fresh_lease_leaves_the_run_to_its_worker(repo: SqlRunRepository,
                                                    tmp_path: Path) -> None:
    clock, queue = Clock(), NullDispatcher()
    ex = _execution(repo, tmp_path, FakeExecutor(), clock)
    _abandoned(repo, ex, clock, "r1")
    clock.advance(LEASE - 1)
    ex.recover_stale_starts(queue)
    assert _state(repo, "r1") == S.INITIALIZING
    assert queue.sent == []


def test_a_stale_lease_requeues_a_run_that_never_reached_the_executor_once(
        repo: SqlRunRepository, tmp_path: Path) -> None:
    clock, queue = Clock(), NullDispatcher()
    one = _execution(repo, tmp_path, FakeExecutor(), clock)
    other = _execution(repo, tmp_path, FakeExecutor(), clock)  # a second worker
    _abandoned(repo, one, clock, "r1")
    clock.advance(LEASE + 1)
    one.recover_stale_starts(queue)
    other.recover_stale_starts(queue)
    assert _state(repo, "r1") == S.QUEUED
    assert queue.sent == [("start", "r1")]


def test_a_stale_lease_adopts_what_the_dead_worker_submitted(repo: SqlRunRepository,
                                                              tmp_path: Path) -> None:
    clock, queue, registry = Clock(), NullDispatcher(), {}
    ex = _execution(repo, tmp_path, FakeExecutor(registry), clock)
    _abandoned(repo, ex, clock, "r1")
    handle = FakeExecutor(registry).submit(ExecutionSpec(  # submitted, never recorded
        run_id="r1", argv=("sleep", "3600"), workdir=tmp_path / "runs/r1",
        stdout=tmp_path / "out", stderr=tmp_path / "err"))
    clock.advance(LEASE + 1)
    ex.recover_stale_starts(queue)
    run = repo.get("r1")
    assert run is not None and run.handle == handle
    assert run.state == S.RUNNING
    assert queue.sent == []
    assert len({id(p) for p in registry.values()}) == 1, "submitted a second time"


def test_without_a_lease_the_age_is_the_runs_age(repo: SqlRunRepository,
                                                 tmp_path: Path) -> None:
    clock, queue = Clock(), NullDispatcher()
    ex = _execution(repo, tmp_path, FakeExecutor(), clock)
    _run(repo, "young", S.INITIALIZING, clock() - timedelta(seconds=LEASE - 1))
    _run(repo, "old", S.INITIALIZING, clock() - timedelta(seconds=LEASE + 1))
    ex.recover_stale_starts(queue)
    assert (_state(repo, "young"), _state(repo, "old")) == (S.INITIALIZING, S.QUEUED)


class BlockingExecutor(FakeExecutor):
    """Holds ``submit`` until released: a start step that takes a while."""

    def __init__(self, registry: dict[str, FakeProcess]) -> None:
        super().__init__(registry)
        self.entered, self.release = threading.Event(), threading.Event()

    def submit(self, spec: ExecutionSpec) -> JSON:
        self.entered.set()
        assert self.release.wait(30)
        return super().submit(spec)


@pytest.fixture
def leases_module() -> Iterator[object]:
    yield pytest.importorskip("spe.workers.celery_worker")


def test_a_live_step_keeps_its_lease_fresh(repo: SqlRunRepository, tmp_path: Path,
                                           leases_module: object) -> None:
    lease = 0.4  # refreshed every 0.1 s
    registry: dict[str, FakeProcess] = {}
    executor = BlockingExecutor(registry)
    starter = _execution(repo, tmp_path, executor, lease=lease)
    observer = _execution(repo, tmp_path, FakeExecutor(registry), lease=lease)
    leases = leases_module.StartLeases(starter)  # type: ignore[attr-defined]
    leases.begin()
    _run(repo, "r1", S.QUEUED, datetime.now(UTC))
    step = threading.Thread(target=leases.start, args=("r1",))
    step.start()
    try:
        assert executor.entered.wait(10)
        stop = threading.Event()
        for _ in range(10):  # 1 s: more than twice the lease
            stop.wait(0.1)
            observer.recover_stale_starts(NullDispatcher())
            assert _state(repo, "r1") == S.INITIALIZING
    finally:
        executor.release.set()
        step.join(10)
        leases.stop()
    assert _state(repo, "r1") == S.RUNNING


def test_no_lease_is_taken_for_a_run_that_is_not_queued(repo: SqlRunRepository,
                                                        tmp_path: Path,
                                                        leases_module: object) -> None:
    ex = _execution(repo, tmp_path, FakeExecutor())
    leases = leases_module.StartLeases(ex)  # type: ignore[attr-defined]
    _run(repo, "done", S.COMPLETE, datetime.now(UTC))
    leases.start("done")
    leases.start("../../not-a-run")
    assert not (tmp_path / "runs" / "done" / START_LEASE).exists()
    assert not (tmp_path / "not-a-run").exists()
