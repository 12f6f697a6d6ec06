"""The in-process worker of the embedded default: handles dispatcher messages and runs the
reconciler periodically in a daemon thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from spe.services.execution import Execution

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, execution: Execution, interval: float) -> None:
        self._execution = execution
        self._interval = interval
        self._sweep: Callable[[], object] | None = None
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
            try:
                self._execution.reconcile_all()
                self._execution.start_queued()
                self._maybe_sweep()
            except Exception:  # keep reconciling whatever happened this round
                log.exception("reconciler round failed")

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
