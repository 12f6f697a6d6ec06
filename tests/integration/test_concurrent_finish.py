"""Two reconcilers (two workers) finish the same run at once, on SQLite and PostgreSQL.

The overlap is made deterministic: the first reconciler's quarantine copy blocks until the
second has had its try. Exactly one finishes the run: its end time, exit code and outputs
are stored, and the outputs are copied into quarantine exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pytest
from sqlalchemy import Engine

from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.session import make_sessions
from spe.adapters.storage.filesystem import FilesystemStore
from spe.domain.catalog import WorkflowEntry
from spe.domain.models import Run, RunRequest
from spe.domain.ports import ObjectInfo
from spe.domain.states import RunState
from spe.services.execution import Execution
from tests import services_kit as kit
from tests.fakes import FakeExecutor, FakeProcess, SleepEngine

S = RunState
OUTPUT = Path("results/out.txt")


@pytest.fixture
def repo(engine: Engine) -> SqlRunRepository:
    """A run repository on SQLite and on PostgreSQL (``engine``, tests/conftest.py)."""
    return SqlRunRepository(make_sessions(engine))


class OneOutputEngine(SleepEngine):
    """The stand-in engine, with one declared output."""

    def outputs(self, entry: WorkflowEntry, workdir: Path) -> list[Path]:
        return [OUTPUT]


class CountingStore:
    """Counts ``put`` calls into a real filesystem store; ``hold`` makes a put wait for it."""

    def __init__(self, inner: FilesystemStore) -> None:
        self.inner, self.puts, self.keys = inner, 0, list[str]()
        self.copying, self.hold = threading.Event(), threading.Event()
        self.hold.set()

    def put(self, key: str, stream: BinaryIO) -> ObjectInfo:
        self.puts += 1
        self.keys.append(key)
        self.copying.set()
        assert self.hold.wait(timeout=30)
        return self.inner.put(key, stream)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def assert_copied_once(store: CountingStore) -> None:
    """One reconciler copied: the output and the engine's two logs (issue 11), each once."""
    assert sorted(store.keys) == ["r1/_logs/stderr.txt", "r1/_logs/stdout.txt",
                                  f"r1/{OUTPUT.as_posix()}"]
    assert store.puts == len(store.keys)


def _execution(repo: SqlRunRepository, tmp_path: Path, registry: dict[str, FakeProcess],
               store: CountingStore) -> Execution:
    data = kit.data_service(repo, tmp_path / "quarantine", stores=lambda location: store)
    return kit.execution(repo, tmp_path, FakeExecutor(registry), engine=OneOutputEngine(),
                         data=data)


def _ended_run(repo: SqlRunRepository, first: Execution,
               registry: dict[str, FakeProcess]) -> Run:
    """A run that RUNNING in the store whose engine has just ended with one output."""
    entry = first.catalog.resolve("tsv-summary")
    repo.add(Run(id="r1", owner_sub="dev|alice", owner_name="alice", state=S.QUEUED,
                 request=RunRequest("tsv-summary", "SMK", "9"), workflow_id=entry.id,
                 workflow_version=entry.version, bundle_digest=entry.bundle_digest,
                 engine="snakemake", engine_options={}, created_at=datetime.now(UTC),
                 project="proj-a"))
    first.start("r1")
    out = first.workdir(repo.get("r1")) / "work" / OUTPUT  # type: ignore[arg-type]
    out.parent.mkdir(parents=True)
    out.write_text("a,b\n1,2\n")
    registry["run:r1"].duration = 0  # the engine ended
    run = repo.get("r1")
    assert run is not None and run.state == S.RUNNING
    return run


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    (tmp_path / "quarantine").mkdir()
    return CountingStore(FilesystemStore(tmp_path / "quarantine"))


def test_two_reconcilers_finishing_one_run_at_once_finish_it_once(
        repo: SqlRunRepository, tmp_path: Path, store: CountingStore) -> None:
    registry: dict[str, FakeProcess] = {}
    first, second = (_execution(repo, tmp_path, registry, store) for _ in range(2))
    run = _ended_run(repo, first, registry)
    store.hold.clear()  # the first reconciler's copy is slow
    slow = threading.Thread(target=first.reconcile, args=(run,))
    slow.start()
    assert store.copying.wait(timeout=30)
    second.reconcile(run)  # read RUNNING too; arrives while the first is copying
    store.hold.set()
    slow.join(timeout=30)

    done = repo.get("r1")
    assert done is not None
    assert (done.state, done.exit_code) == (S.COMPLETE, 0)
    assert done.end_time is not None and done.start_time is not None
    assert [o.path for o in done.outputs] == [OUTPUT.as_posix()]
    assert_copied_once(store)
    assert (tmp_path / "quarantine" / "r1" / OUTPUT).read_text() == "a,b\n1,2\n"


def test_a_late_reconciler_with_a_stale_read_changes_nothing(
        repo: SqlRunRepository, tmp_path: Path, store: CountingStore) -> None:
    registry: dict[str, FakeProcess] = {}
    first, second = (_execution(repo, tmp_path, registry, store) for _ in range(2))
    stale = _ended_run(repo, first, registry)
    first.reconcile(stale)
    finished = repo.get("r1")
    assert finished is not None and finished.end_time is not None

    second.reconcile(stale)  # still says RUNNING

    again = repo.get("r1")
    assert again == finished
    assert_copied_once(store)


def test_a_cancel_while_outputs_are_copied_ends_the_run_canceled_with_its_outputs(
        repo: SqlRunRepository, tmp_path: Path, store: CountingStore) -> None:
    registry: dict[str, FakeProcess] = {}
    first = _execution(repo, tmp_path, registry, store)
    run = _ended_run(repo, first, registry)
    store.hold.clear()
    slow = threading.Thread(target=first.reconcile, args=(run,))
    slow.start()
    assert store.copying.wait(timeout=30)
    assert repo.transition("r1", frozenset({S.RUNNING}), S.CANCELING)  # the user cancels
    store.hold.set()
    slow.join(timeout=30)

    done = repo.get("r1")
    assert done is not None
    assert done.state == S.CANCELED and done.end_time is not None
    assert [o.path for o in done.outputs] == [OUTPUT.as_posix()]
    assert_copied_once(store)
