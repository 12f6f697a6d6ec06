"""Following a run until it ends (``--wait``): progress on stderr, robust to a service
restart, and Ctrl-C that leaves the run running and says how to follow it again.

The job count shown is what the engine has reported so far (the run's WES task list):
nothing until the first job is known (never ``0/None``), then ``done/known jobs``; when the
engine reports more jobs than before, a line says the total grew.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from spe.cli.client import WesClient
from spe.cli.errors import ApiError, CliError, Interrupted, Unreachable
from spe.cli.output import console

FINAL = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"})
PATIENCE = 300.0  # seconds without the service before --wait gives up (exit 3)
TRANSIENT = frozenset({502, 503, 504})


@dataclass
class JobCount:
    """The jobs the engine has reported: ``known`` (None before the first), ``done``."""

    known: int | None = None
    done: int = 0
    failed: int = 0

    def update(self, tasks: list[dict[str, Any]]) -> int | None:
        """Take the new task list; the previous total when it grew, else None."""
        before = self.known
        self.known = len(tasks) or self.known
        self.done = sum(1 for t in tasks if t.get("exit_code") == 0)
        self.failed = sum(1 for t in tasks if t.get("exit_code") not in (None, 0))
        grew = before is not None and self.known is not None and self.known > before
        return before if grew else None

    def label(self) -> str:
        if self.known is None:
            return "waiting for the engine's first job"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done}/{self.known} jobs{failed}"


POLL_ERRORS = (requests.ConnectionError, requests.Timeout, ApiError)


@dataclass
class Outage:
    """How long the service has been away while a command follows ``run_id``."""

    run_id: str
    patience: float = PATIENCE
    clock: Callable[[], float] = time.monotonic
    since: float | None = None

    def lost(self, exc: Exception) -> None:
        """A poll failed: re-raise what is no outage (a 4xx), give up (exit 3) once the
        service has been away longer than ``patience``."""
        if isinstance(exc, ApiError) and exc.status not in TRANSIENT:
            raise exc
        self.since = self.since or self.clock()
        if self.clock() - self.since > self.patience:
            raise Unreachable(f"lost the service for {self.patience:.0f} s; run "
                              f"{self.run_id} may still be running: "
                              f"{follow_hint(self.run_id)}") from None

    def back(self) -> bool:
        """A poll worked: whether the service had been away."""
        was_away, self.since = self.since is not None, None
        return was_away


def follow_hint(run_id: str) -> str:
    return (f"`spe run status --wait {run_id}` follows it again, `spe run cancel {run_id}` "
            "stops it")


def follow(client: WesClient, run_id: str, poll: float = 1.0, timeout: float = 86400.0,
           patience: float = PATIENCE,
           clock: Callable[[], float] = time.monotonic) -> str:
    """Show progress until the run reaches a final state; return that state. A service
    that goes away (restart) is waited for up to ``patience`` seconds."""
    try:
        return _follow(client, run_id, poll, clock() + timeout,
                       Outage(run_id, patience, clock), clock)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped following run {run_id}; it carries on in the service: "
                          f"{follow_hint(run_id)}") from None


def _follow(client: WesClient, run_id: str, poll: float, deadline: float,
            outage: Outage, clock: Callable[[], float]) -> str:
    jobs = JobCount()
    err = console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[jobs]}"), TimeElapsedColumn(),
                  console=err, transient=False) as progress:
        bar = progress.add_task(f"{run_id[:8]} QUEUED", total=None, jobs=jobs.label())
        while clock() < deadline:
            try:
                state = str(client.status(run_id)["state"])
                tasks = client.tasks(run_id)
            except POLL_ERRORS as exc:
                outage.lost(exc)
                progress.update(bar, description=f"{run_id[:8]} service unreachable, "
                                "retrying")
                time.sleep(max(poll, 2.0))
                continue
            if outage.back():
                progress.console.print(f"run {run_id}: the service is back")
            grew_from = jobs.update(tasks)
            if grew_from is not None:
                progress.console.print(f"run {run_id[:8]}: the engine now reports "
                                       f"{jobs.known} jobs (was {grew_from})")
            progress.update(bar, description=f"{run_id[:8]} {state}", jobs=jobs.label(),
                            total=jobs.known, completed=jobs.done)
            if state in FINAL:
                return state
            time.sleep(poll)
    raise CliError(f"run {run_id} did not end in time; {follow_hint(run_id)}")
