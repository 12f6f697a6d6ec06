"""Following a run until it ends (``--wait``): progress on stderr, robust to a service
restart, and Ctrl-C that leaves the run running and says how to follow it again.

The job count shown is ``done/total jobs``: ``done`` from the run's WES task list, and
``total`` the jobs the engine plans (``/spe/v1/runs/{id}/progress``, from Snakemake's
structured events) or, where the engine does not report a plan (Nextflow, a service
without that endpoint), the jobs it has reported so far. Nothing is shown until a job or
a plan is known (never ``0/None``); when the total grows (a checkpoint, more jobs seen), a
line says so.
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
    """The jobs the engine has reported: ``known`` (None before the first; the planned
    total once the engine reported one, else the jobs seen), ``done``, ``failed``."""

    known: int | None = None
    done: int = 0
    failed: int = 0
    planned: int | None = None

    def update(self, tasks: list[dict[str, Any]], planned: int | None = None) -> int | None:
        """Take the new task list (and the engine's planned total, when known); the
        previous total when it grew, else None."""
        before = self.known
        self.planned = planned if planned is not None else self.planned
        seen = len(tasks) or None
        totals = [n for n in (self.planned, seen, self.known) if n]
        self.known = max(totals) if totals else None
        self.done = sum(1 for t in tasks if t.get("exit_code") == 0)
        self.failed = sum(1 for t in tasks if t.get("exit_code") not in (None, 0))
        grew = before is not None and self.known is not None and self.known > before
        return before if grew else None

    def label(self) -> str:
        if self.known is None:
            return "waiting for the engine's first job"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done}/{self.known} jobs{failed}"


@dataclass
class Plan:
    """Asks the service for the engine's planned job total, until it says it has no such
    endpoint (an older service: 404 for a run it has just shown)."""

    available: bool = True

    def planned(self, client: WesClient, run_id: str) -> int | None:
        if not self.available:
            return None
        try:
            value = client.progress(run_id).get("planned_jobs")
        except ApiError as exc:
            if exc.status == 404:
                self.available = False
                return None
            raise
        return value if isinstance(value, int) and value > 0 else None


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
    jobs, plan = JobCount(), Plan()
    err = console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[jobs]}"), TimeElapsedColumn(),
                  console=err, transient=False) as progress:
        bar = progress.add_task(f"{run_id[:8]} QUEUED", total=None, jobs=jobs.label())
        while clock() < deadline:
            try:
                state = str(client.status(run_id)["state"])
                tasks = client.tasks(run_id)
                planned = plan.planned(client, run_id)
            except POLL_ERRORS as exc:
                outage.lost(exc)
                progress.update(bar, description=f"{run_id[:8]} service unreachable, "
                                "retrying")
                time.sleep(max(poll, 2.0))
                continue
            if outage.back():
                progress.console.print(f"run {run_id}: the service is back")
            grew_from = jobs.update(tasks, planned)
            if grew_from is not None:
                progress.console.print(f"run {run_id[:8]}: the engine now reports "
                                       f"{jobs.known} jobs (was {grew_from})")
            progress.update(bar, description=f"{run_id[:8]} {state}", jobs=jobs.label(),
                            total=jobs.known, completed=jobs.done)
            if state in FINAL:
                return state
            time.sleep(poll)
    raise CliError(f"run {run_id} did not end in time; {follow_hint(run_id)}")
