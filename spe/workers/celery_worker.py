"""The ``spe worker`` process (dispatcher=celery): Celery tasks for the start and cancel
steps, start leases, and the reconciler loop.

- Tasks carry a run id only and call ``Execution``, which re-reads the run; every step is
  idempotent (compare-and-set transitions; ``Executor.find`` before ``submit``), so a
  message delivered twice, or again after its worker was killed, is harmless.
- A start step holds the run's start lease (a file in its work dir) and a heartbeat thread
  refreshes it while the step runs. A worker killed mid-step stops refreshing; once the
  lease is older than ``start_lease_seconds`` any worker's reconciler adopts the
  submission it made or requeues the run (``Execution.recover_stale_starts``).
- Every worker runs the reconciler (see the decision table in ``spe.services.execution``):
  concurrent reconcilers are safe because state changes are compare-and-set. It also
  starts QUEUED runs, so a message lost with Redis only delays a run.
- Tasks run on a thread pool in this one process: a worker killed by SIGKILL takes its
  steps and heartbeats down with it, never half of them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from celery import Celery

from spe.adapters.queue.celery import CANCEL_TASK, QUEUE, START_TASK
from spe.domain.ports import Dispatcher
from spe.domain.states import RunState
from spe.services.execution import Execution
from spe.workers.inline import run_steps

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
        checking first also keeps unknown ids from naming a work dir)."""
        run = self._execution.repo.get(run_id)
        if run is None or run.state != RunState.QUEUED:
            return
        with self._holding(run_id):
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
        while not self._stop.wait(self._execution.start_lease_seconds / 4):
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


class Reconciler:
    """The periodic reconciler of one worker process, in a daemon thread."""

    def __init__(self, execution: Execution, dispatcher: Dispatcher, leases: StartLeases,
                 interval: float) -> None:
        self._execution, self._dispatcher, self._leases = execution, dispatcher, leases
        self._interval = interval
        self._sweep: Callable[[], object] | None = None
        self._sweep_every, self._sweep_due = 3600.0, 0.0
        self._each_round: list[Callable[[], object]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def schedule_sweep(self, sweep: Callable[[], object], every: float) -> None:
        """Also run ``sweep`` (the retention purge; idempotent) every ``every`` seconds."""
        self._sweep, self._sweep_every = sweep, every

    def each_round(self, step: Callable[[], object]) -> None:
        """Also run ``step`` (idempotent, e.g. ``ReleaseWork.carry_on``) every round."""
        self._each_round.append(step)

    def round(self) -> None:
        """One pass: poll what runs, recover abandoned starts, start what waits, sweep
        when due, then the ``each_round`` steps (which run even if the rest failed)."""
        try:
            self._execution.reconcile_all()
            self._execution.recover_stale_starts(self._dispatcher)
            self._execution.start_queued(start=self._leases.start)
            now = self._execution.clock().timestamp()
            if self._sweep is not None and now >= self._sweep_due:
                self._sweep_due = now + self._sweep_every
                self._sweep()
        finally:
            run_steps(self._each_round)

    def begin(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="spe-reconciler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.round()
            except Exception:  # keep reconciling whatever happened this round
                log.exception("reconciler round failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def register_tasks(app: Celery, execution: Execution, leases: StartLeases) -> None:
    """The task functions the Celery dispatcher publishes by name."""

    def start(run_id: str) -> None:
        leases.start(run_id)

    def cancel(run_id: str) -> None:
        execution.cancel(run_id)

    app.task(name=START_TASK)(start)
    app.task(name=CANCEL_TASK)(cancel)


@dataclass
class CeleryWorker:
    app: Celery
    execution: Execution
    leases: StartLeases
    reconciler: Reconciler

    @classmethod
    def build(cls, app: Celery, execution: Execution, dispatcher: Dispatcher,
              reconcile_seconds: float) -> CeleryWorker:
        leases = StartLeases(execution)
        register_tasks(app, execution, leases)
        return cls(app, execution, leases,
                   Reconciler(execution, dispatcher, leases, reconcile_seconds))

    def run(self, concurrency: int, loglevel: str = "INFO") -> int:
        """Consume until a signal stops the worker (SIGTERM: finish the running steps)."""
        self.leases.begin()
        self.reconciler.begin()
        try:
            worker = self.app.Worker(
                pool="threads", concurrency=concurrency, loglevel=loglevel.upper(),
                queues=[QUEUE], hostname=f"spe-{os.getpid()}@{socket.gethostname()}",
                quiet=True, without_gossip=True, without_mingle=True,
                without_heartbeat=True)
            worker.start()
            return int(worker.exitcode or 0)
        finally:
            self.reconciler.stop()
            self.leases.stop()
