"""The in-process dispatcher of the embedded default: a small thread pool.

Messages are (kind, run id); the handler re-reads everything from the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

Handler = Callable[[str, str], None]


class InlineDispatcher:
    def __init__(self, handler: Handler, workers: int = 2) -> None:
        self._handler = handler
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spe-worker")

    def _run(self, kind: str, run_id: str) -> None:
        try:
            self._handler(kind, run_id)
        except Exception:  # the pool would swallow it; make it visible
            log.exception("worker step %s failed for run %s", kind, run_id)

    def enqueue(self, run_id: str) -> None:
        self._pool.submit(self._run, "start", run_id)

    def enqueue_cancel(self, run_id: str) -> None:
        self._pool.submit(self._run, "cancel", run_id)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class NullDispatcher:
    """Accepts messages and does nothing: used when execution is stubbed out
    (benchmarks of the submission path). Passes the dispatcher contract."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def enqueue(self, run_id: str) -> None:
        self.sent.append(("start", run_id))

    def enqueue_cancel(self, run_id: str) -> None:
        self.sent.append(("cancel", run_id))
