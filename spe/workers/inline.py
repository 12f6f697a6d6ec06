"""The in-process worker of the embedded default: handles dispatcher messages and runs the
reconciler periodically in a daemon thread; ``Background`` runs best-effort steps off the
request path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from spe.services.execution import Execution

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, execution: Execution, interval: float) -> None:
        self._execution = execution
        self._interval = interval
        self._sweep: Callable[[], object] | None = None
        self._each_round: list[Callable[[], object]] = []
        self._sweep_interval = 3600.0
        self._next_sweep = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def handle(self, kind: str, run_id: str) -> None:
        if kind == "start":
            self._execution.start(run_id)
        elif kind == "cancel":
            self._execution.cancel(run_id)
        else:
            log.error("unknown message kind %r for run %s", kind, run_id)

    def start_reconciler(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="spe-reconciler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.round()

    def round(self) -> None:
        """One pass: reconcile runs, start what waits, sweep when due, then every step
        added with ``each_round``; a step that fails does not keep the others from running."""
        try:
            self._execution.reconcile_all()
            self._execution.start_queued()
            self._maybe_sweep()
        except Exception:  # keep reconciling whatever happened this round
            log.exception("reconciler round failed")
        run_steps(self._each_round)

    def each_round(self, step: Callable[[], object]) -> None:
        """Also run ``step`` (idempotent, e.g. ``ReleaseWork.carry_on``) every round."""
        self._each_round.append(step)

    def schedule_sweep(self, sweep: Callable[[], object], interval: float) -> None:
        """Also run ``sweep`` (the retention purge) every ``interval`` seconds."""
        self._sweep, self._sweep_interval = sweep, interval

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if self._sweep is not None and now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            self._sweep()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def run_steps(steps: list[Callable[[], object]]) -> None:
    """Each of ``steps`` in turn; one that raises is logged and the next one runs."""
    for step in steps:
        try:
            step()
        except Exception:
            log.exception("reconciler step %s failed", getattr(step, "__qualname__", step))


class Background:
    """Best-effort steps off the request path, one at a time in a daemon thread. A step
    that raises is logged; whatever it left undone is the reconciler's (the steps given
    here are ones a reconciler also carries on)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spe-background")

    def submit(self, step: Callable[[], object]) -> None:
        self._pool.submit(self._run, step)

    @staticmethod
    def _run(step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:
            log.exception("background step failed")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
