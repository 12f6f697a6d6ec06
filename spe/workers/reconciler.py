"""The one reconciler loop, run by every process that executes runs (``spe serve`` with the
inline dispatcher, and each ``spe worker``), and the start leases it relies on.

- A start step holds the run's start lease (a file in its job dir) and a heartbeat thread
  refreshes it while the step runs. A process killed mid-step stops refreshing; once the
  lease is older than ``start_lease_seconds`` any process's reconciler adopts the
  submission it made or requeues the run (``Execution.recover_stale_starts``).
- Each round (see the decision table in ``spe.services.execution``) polls what runs,
  recovers abandoned starts, starts QUEUED runs while there is room, and runs the periodic
  jobs scheduled on it (the retention sweep, the airlock's pending steps). Concurrent
  reconcilers are safe because every state change is a compare-and-set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from spe.domain import log_context
from spe.domain.ports import Dispatcher
from spe.domain.states import RunState
from spe.services.execution import Execution

log = logging.getLogger(__name__)


class StartLeases:
    """Runs start steps under a start lease and keeps the held leases fresh."""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, run_id: str) -> None:
        """The start step of a queued run (a run in any other state has nothing to start;
        checking first also keeps unknown ids from naming a job dir)."""
        run = self._execution.repo.get(run_id)
        if run is None or run.state != RunState.QUEUED:
            return
        with log_context.run(run_id), self._holding(run_id):
            self._execution.start(run_id)

    @contextmanager
    def _holding(self, run_id: str) -> Iterator[None]:
        self._execution.touch_start_lease(run_id)
        with self._lock:
            self._held.add(run_id)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(run_id)

    def begin(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="spe-start-leases",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self._execution.tuning.start_lease_seconds / 4):
            with self._lock:
                held = sorted(self._held)
            for run_id in held:
                try:
                    self._execution.touch_start_lease(run_id)
                except OSError:
                    log.exception("refreshing the start lease of run %s failed", run_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass
class _Periodic:
    job: Callable[[], object]
    every: float
    due: float = 0.0
    at_stop: bool = False


class Reconciler:
    """The periodic reconciler of one process, in a daemon thread."""

    def __init__(self, execution: Execution, dispatcher: Dispatcher, leases: StartLeases,
                 interval: float) -> None:
        self._execution, self._dispatcher, self._leases = execution, dispatcher, leases
        self._interval = interval
        self._periodic: list[_Periodic] = []
        self.last_success: float | None = None  # Unix time of the last pass that completed
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Run a round now rather than at the next tick (an executor saw a job end).
        Nudges during a round coalesce into one more round."""
        self._wake.set()

    def schedule(self, job: Callable[[], object], every: float = 0.0, *,
                 at_stop: bool = False) -> None:
        """Also run ``job`` (idempotent: the retention purge, the airlock's pending steps)
        every ``every`` seconds (0: every round), from the first round on; with
        ``at_stop`` once more when the reconciler stops (the audit checkpoint)."""
        self._periodic.append(_Periodic(job, every, at_stop=at_stop))

    def round(self) -> None:
        """One pass: poll what runs, recover abandoned starts, start what waits; then the
        periodic jobs that are due, even when the rest of the round failed."""
        try:
            self._execution.reconcile_all()
            self._execution.recover_stale_starts(self._dispatcher)
            self._execution.start_queued(start=self._leases.start)
            self.last_success = time.time()
        finally:
            self._run_due()

    def _run_due(self) -> None:
        now = self._execution.clock().timestamp()
        for periodic in self._periodic:
            if now >= periodic.due:
                periodic.due = now + periodic.every
                self._run(periodic)

    @staticmethod
    def _run(periodic: _Periodic) -> None:
        try:
            periodic.job()
        except Exception:  # one failing job must not stop the others
            log.exception("periodic job %s failed",
                          getattr(periodic.job, "__qualname__", periodic.job))

    def begin(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="spe-reconciler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.round()
            except Exception:  # keep reconciling whatever happened this round
                log.exception("reconciler round failed")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for periodic in self._periodic:
            if periodic.at_stop:
                self._run(periodic)
