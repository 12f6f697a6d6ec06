"""A job scheduled ``at_stop`` on the reconciler (the audit checkpoint of ``spe worker``)
runs once more when the reconciler stops, after its last round; other jobs do not, and a
failing one does not stop the others."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from spe.workers.reconciler import Reconciler


def test_at_stop_jobs_run_when_the_reconciler_stops_and_others_do_not() -> None:
    execution = SimpleNamespace(clock=lambda: datetime.now(UTC))
    reconciler = Reconciler(cast(Any, execution), cast(Any, None), cast(Any, None), 1.0)
    calls: list[str] = []

    def failing() -> None:
        calls.append("failing")
        raise RuntimeError("the store is down")

    reconciler.schedule(failing, 1000, at_stop=True)
    reconciler.schedule(lambda: calls.append("checkpoint"), 1000, at_stop=True)
    reconciler.schedule(lambda: calls.append("sweep"), 1000)
    reconciler.stop()
    assert calls == ["failing", "checkpoint"]
