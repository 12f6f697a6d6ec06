"""Best-effort steps off the request path (an approval nudges its release): one at a time
in a daemon thread. A step that raises is logged; whatever it left undone is the
reconciler's, since every step given here is one a reconciler also carries on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class Background:
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
