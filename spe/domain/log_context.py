"""What every log line of the current request or job step carries: the request id (set by
the API edge for one request) and the run id (set while a worker or the reconciler works on
one run). Context variables, so threads and tasks each see their own; the logging setup
(``spe.adapters.observability.logs``) adds them to every record."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("spe_request_id", default="")
run_id: ContextVar[str] = ContextVar("spe_run_id", default="")


@contextmanager
def bound(var: ContextVar[str], value: str) -> Iterator[None]:
    """``var`` is ``value`` inside the block, and what it was before after it."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def run(value: str) -> AbstractContextManager[None]:
    """The run id of the log lines inside the block."""
    return bound(run_id, value)
