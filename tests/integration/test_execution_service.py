"""The worker-side service (start, cancel, reconcile) with a real SQLite store and the
shipped catalog, on the fake executor: races and limits that are hard to time on real
processes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from spe.adapters.catalog import load_catalog
from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.task_logs import SqlTaskLogRepository
from spe.domain.models import JSON, Run, RunRequest
from spe.domain.ports import ExecutionSpec
from spe.domain.states import RunState
from spe.services.execution import Execution
from tests.fakes import FakeExecutor, FakeProcess, SleepEngine
from tests.helpers import ROOT

S = RunState


@pytest.fixture
def repo(tmp_path: Path) -> SqlRunRepository:
    url = f"sqlite:///{tmp_path / 'spe.db'}"
    upgrade(url)
    return SqlRunRepository(make_sessions(make_engine(url)))


def _execution(repo: SqlRunRepository, tmp_path: Path, executor: FakeExecutor,
               max_active: int = 4) -> Execution:
    catalog, bundles = load_catalog(ROOT / "workflows")
    return Execution(repo=repo, task_logs=SqlTaskLogRepository(repo._sessions),
                     catalog=catalog, bundles=bundles,
                     engines={"snakemake": SleepEngine()}, executor=executor,
                     runs_dir=tmp_path / "runs", max_active=max_active)


def _queued(repo: SqlRunRepository, run_id: str) -> Run:
    entry = load_catalog(ROOT / "workflows")[0].resolve("tsv-summary")
    return repo.add(Run(
        id=run_id, owner_sub="dev|alice", owner_name="alice", state=S.QUEUED,
        request=RunRequest("tsv-summary", "SMK", "9"), workflow_id=entry.id,
        workflow_version=entry.version, bundle_digest=entry.bundle_digest,
        engine="snakemake", engine_options={}, created_at=datetime.now(UTC)))


class CancelDuringSubmit(FakeExecutor):
    """Simulates a user's cancel arriving while the engine is being submitted."""

    def __init__(self, repo: SqlRunRepository, registry: dict[str, FakeProcess]) -> None:
        super().__init__(registry)
        self.repo = repo

    def submit(self, spec: ExecutionSpec) -> JSON:
        handle = super().submit(spec)
        assert self.repo.transition(spec.run_id, frozenset({S.INITIALIZING}), S.CANCELING)
        return handle


def test_a_cancel_during_start_stops_the_engine_that_was_just_started(
        repo: SqlRunRepository, tmp_path: Path) -> None:
    registry: dict[str, FakeProcess] = {}
    execution = _execution(repo, tmp_path, CancelDuringSubmit(repo, registry))
    _queued(repo, "r1")
    execution.start("r1")
    assert registry["run:r1"].canceled_at is not None
    run = repo.get("r1")
    assert run is not None and run.handle is not None
    execution.reconcile(run)
    assert repo.get("r1").state == S.CANCELED  # type: ignore[union-attr]


def test_runs_beyond_max_active_wait_in_queued_and_start_when_room_frees(
        repo: SqlRunRepository, tmp_path: Path) -> None:
    registry: dict[str, FakeProcess] = {}
    execution = _execution(repo, tmp_path, FakeExecutor(registry), max_active=1)
    for run_id in ("a", "b"):
        _queued(repo, run_id)
        execution.start(run_id)
    assert repo.get("a").state == S.RUNNING  # type: ignore[union-attr]
    assert repo.get("b").state == S.QUEUED  # type: ignore[union-attr]
    execution.start_queued()
    assert repo.get("b").state == S.QUEUED  # type: ignore[union-attr]  # still no room
    registry["run:a"].duration = 0  # the first run ends
    execution.reconcile_all()
    execution.start_queued()
    assert repo.get("a").state == S.COMPLETE  # type: ignore[union-attr]
    assert repo.get("b").state == S.RUNNING  # type: ignore[union-attr]


def test_a_run_whose_catalog_entry_was_removed_still_ends(
        repo: SqlRunRepository, tmp_path: Path) -> None:
    registry: dict[str, FakeProcess] = {}
    execution = _execution(repo, tmp_path, FakeExecutor(registry))
    _queued(repo, "gone")
    execution.start("gone")
    execution.catalog = type(execution.catalog)([])  # the entry is withdrawn meanwhile
    registry["run:gone"].duration = 0
    execution.reconcile_all()
    assert repo.get("gone").state == S.COMPLETE  # type: ignore[union-attr]
