"""The worker of every process that executes runs: ``spe serve`` with the inline dispatcher
(messages arrive on its threads) and each ``spe worker`` (messages arrive from Celery,
``spe.adapters.queue.celery.consume``). Messages carry a run id only and call
``Execution``, which re-reads the run; every step is idempotent (compare-and-set
transitions, ``Executor.find`` before ``submit``), so a message delivered twice, or again
after its worker was killed, is harmless. It runs the one reconciler loop
(``spe.workers.reconciler``); the reconciler also starts QUEUED runs, so a lost message
only delays a run."""

from __future__ import annotations

import logging

from spe.domain import log_context
from spe.domain.ports import Dispatcher, EndNotifier
from spe.services.execution import Execution
from spe.workers.reconciler import Reconciler, StartLeases

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, execution: Execution, dispatcher: Dispatcher, interval: float) -> None:
        self._execution = execution
        self.leases = StartLeases(execution)
        self.reconciler = Reconciler(execution, dispatcher, self.leases, interval)

    def handle(self, kind: str, run_id: str) -> None:
        with log_context.run(run_id):
            if kind == "start":
                self.leases.start(run_id)
            elif kind == "cancel":
                self._execution.cancel(run_id)
            else:
                log.error("unknown message kind %r for run %s", kind, run_id)

    def start(self) -> None:
        executor = self._execution.executor
        if isinstance(executor, EndNotifier):  # ends noticed at once; the tick stays
            executor.notify_ends(self.reconciler.nudge)
        self.leases.begin()
        self.reconciler.begin()

    def stop(self) -> None:
        self.reconciler.stop()
        self.leases.stop()
