"""Ends noticed by their exit-status files, for executors whose jobs run elsewhere.

A SLURM job script writes the engine's exit status into the run directory
(``spe.adapters.executors.slurm``) on whichever node it ran. One thread of the service
looks for the files of the jobs it watches every ``interval`` seconds (a ``stat`` each)
and calls the end callback when one appears, so the reconciler polls at once instead of at
its next tick. inotify would not do: it does not see what another node writes to a
network file system. Best effort, as every end notice: a file a client's attribute cache
shows late is noticed late, and the reconcile tick (``squeue``) still finds every end."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class ExitFiles:
    def __init__(self, interval: float = 0.25) -> None:
        self._interval = interval
        self._callback: Callable[[], None] | None = None
        self._watched: set[Path] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def notify(self, callback: Callable[[], None]) -> None:
        """Set the one callback and start looking (once)."""
        with self._lock:
            self._callback = callback
            if self._thread is None:
                self._thread = threading.Thread(target=self._look, name="spe-exit-files",
                                                daemon=True)
                self._thread.start()

    def watch(self, exit_file: Path) -> None:
        """Call back when ``exit_file`` appears (nothing before ``notify``)."""
        with self._lock:
            if self._callback is not None:
                self._watched.add(exit_file)

    def _look(self) -> None:
        while True:  # a daemon thread: it lives as long as the process
            time.sleep(self._interval)
            with self._lock:
                watched = list(self._watched)
            ended = [path for path in watched if path.exists()]
            if not ended:
                continue
            with self._lock:
                self._watched.difference_update(ended)
                callback = self._callback
            try:
                if callback is not None:
                    callback()
            except Exception:  # the tick still notices the end
                log.exception("the end callback failed")
