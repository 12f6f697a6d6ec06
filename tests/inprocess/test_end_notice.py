"""The end of a run is noticed at once: the local executor watches each runner's exit and
nudges the reconciler, so a run completes long before the next reconcile tick; when that
notification is lost, the tick still finds the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from spe.adapters.executors.local import LocalExecutor
from spe.app import create_app
from spe.config import Settings
from spe.domain.ports import ExecutionSpec, ExecutorChoice
from spe.domain.states import RunState
from tests.fakes import ResultsEngine
from tests.inprocess.harness import InProcess


class DeafExecutor(LocalExecutor):
    """The real local executor whose end notifications are all lost."""

    def notify_ends(self, callback: Callable[[], None]) -> None:
        super().notify_ends(lambda: None)


@contextmanager
def service(tmp: Path, catalog: Path, executor: LocalExecutor,
            reconcile_seconds: float) -> Iterator[InProcess]:
    settings = Settings(home=tmp / "home", catalog_dir=catalog,
                        reconcile_seconds=reconcile_seconds, cancel_grace_seconds=0)
    built = create_app(settings, choice=ExecutorChoice(executor))
    built.execution.engines["snakemake"] = ResultsEngine()
    with built.app.test_client() as client:
        yield InProcess(built, client, executor)  # type: ignore[arg-type]


def finish_time(spe: InProcess, seconds: int, timeout: float) -> float:
    run_id = spe.run_id(spe.submit("alice", "sleepy", {"seconds": seconds}))
    t0 = time.monotonic()
    assert spe.wait("alice", run_id, timeout=timeout) == "COMPLETE"
    return time.monotonic() - t0


def test_a_run_completes_long_before_the_next_tick(tmp_path: Path, catalog_dir: Path) -> None:
    with service(tmp_path, catalog_dir, LocalExecutor(0), reconcile_seconds=60) as spe:
        took = finish_time(spe, 1, timeout=20)
    assert took < 10, f"the end was noticed after {took:.1f} s"


def test_a_lost_notification_is_still_caught_by_the_tick(tmp_path: Path,
                                                         catalog_dir: Path) -> None:
    with service(tmp_path, catalog_dir, DeafExecutor(0), reconcile_seconds=0.3) as spe:
        assert finish_time(spe, 1, timeout=20) > 0


def test_without_notification_the_end_waits_for_the_tick(tmp_path: Path,
                                                          catalog_dir: Path) -> None:
    """The control of the first test: the same run with notifications lost is not
    noticed before the (long) tick, so the first test measures the notification."""
    with service(tmp_path, catalog_dir, DeafExecutor(0), reconcile_seconds=60) as spe:
        run_id = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}))
        time.sleep(3)
        assert spe.get("alice", f"/ga4gh/wes/v1/runs/{run_id}/status").json()["state"] \
            in ("QUEUED", "INITIALIZING", "RUNNING")


def test_the_executor_calls_back_after_the_exit_status_is_written(tmp_path: Path) -> None:
    executor = LocalExecutor(0)
    ended = threading.Event()
    seen: list[RunState] = []
    handle_box: list[dict[str, object]] = []

    def on_end() -> None:
        seen.append(executor.poll(handle_box[0]).state)
        ended.set()

    executor.notify_ends(on_end)
    workdir = tmp_path / "job"
    workdir.mkdir()
    spec = ExecutionSpec(run_id="r1", workdir=workdir, argv=("sleep", "0.3"),
                         stdout=workdir / "out", stderr=workdir / "err")
    handle_box.append(executor.submit(spec))
    assert ended.wait(10)
    assert seen == [RunState.COMPLETE]
