"""Worker-side use cases: start a queued run, cancel it, and reconcile runs with what the
executor reports.

Reconciler decision table (``Execution.reconcile``), per non-final run:

| stored state | handle | executor says      | action                                   |
|--------------|--------|--------------------|------------------------------------------|
| QUEUED       | -      | -                  | start while fewer than max_active runs   |
|              |        |                    | are active (oldest first)                |
| INITIALIZING | none   | -                  | adopt ``handle.json`` if the work dir has |
|              |        |                    | one, else back to QUEUED and re-enqueue  |
|              |        |                    | (at start-up: ``recover``; with several  |
|              |        |                    | workers: ``recover_stale_starts``, only  |
|              |        |                    | once the run's start lease is older than |
|              |        |                    | ``start_lease_seconds``)                 |
| INITIALIZING | yes    | QUEUED (scheduler) | stays INITIALIZING                       |
| INITIALIZING | yes    | RUNNING            | -> RUNNING                               |
| PAUSED       | yes    | RUNNING            | -> RUNNING                               |
| RUNNING      | yes    | RUNNING            | refresh task logs                        |
| RUNNING      | yes    | PAUSED (suspended) | -> PAUSED                                |
| any          | yes    | UNKNOWN            | nothing (the scheduler does not answer)  |
| RUNNING      | yes    | final state S      | hash outputs, task logs, -> S            |
| CANCELING    | yes    | RUNNING            | cancel again (idempotent)                |
| CANCELING    | yes    | any final state    | hash outputs, -> CANCELED                |
| CANCELING    | none   | -                  | cancel an unrecorded submission if the   |
|              |        |                    | executor finds one, -> CANCELED          |

"hash outputs, -> S" (``_finish``): only the reconciler that takes the run's finish claim
copies the outputs into quarantine; it then writes S, the end time, the exit code and the
outputs in one UPDATE guarded by the state and the claim. A run canceled while its outputs
were copied ends CANCELED with them. Every other write is guarded too (the repository's
contract), so a reconciler holding a stale read never undoes another's."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from spe.domain import log_context
from spe.domain.catalog import Catalog, WorkflowEntry
from spe.domain.clock import utc_now
from spe.domain.errors import DomainError
from spe.domain.jobdir import LOG_PREFIX, JobDir
from spe.domain.models import AuditEvent, OutputFile, Run, RunEnding
from spe.domain.ports import (
    AuditLog,
    Dispatcher,
    ExecutionSpec,
    ExecutionStatus,
    Executor,
    ExecutorChoice,
    JobFiles,
    RunRepository,
    TaskLogRepository,
    WorkflowEngine,
)
from spe.domain.resources import job_resources
from spe.domain.states import RunState, can_move, is_final
from spe.services.data import DataService
from spe.services.task_jobs import ImageDrift, TaskJobs

log = logging.getLogger(__name__)
S = RunState


class CatalogDrift(RuntimeError):
    """A bundle on disk no longer hashes to its approved digest (the service's own
    message: it names the entry and the digests, never the run's data)."""


def service_reason(exc: Exception) -> str:
    """What a run's system log may say about an exception: the service's own message (a
    domain error, a catalog drift), else only its class. Other exceptions' text (an OS
    error naming a file, a tool's output) may carry names or values from the run; it goes
    to the service log."""
    if isinstance(exc, DomainError | CatalogDrift | ImageDrift):
        return str(exc)[:500]
    return f"{type(exc).__name__} (details are in the service log)"


@dataclass(frozen=True)
class Tuning:
    """How hard the execution service works: at most ``max_active`` runs execute at once;
    a start step whose lease was not refreshed for ``start_lease_seconds`` is taken over;
    a finish claim holds for ``finish_claim_seconds``."""

    max_active: int = 4
    start_lease_seconds: float = 60.0
    finish_claim_seconds: float = 900.0


@dataclass
class Execution:
    repo: RunRepository
    task_logs: TaskLogRepository
    catalog: Catalog
    bundles: dict[str, Path]
    engines: dict[str, WorkflowEngine]
    choice: ExecutorChoice
    runs_dir: Path
    data: DataService
    files: JobFiles
    audit: AuditLog
    tuning: Tuning = field(default_factory=Tuning)
    clock: Callable[[], datetime] = utc_now
    tasks: TaskJobs | None = None  # TES tasks, where the service offers them

    @property
    def executor(self) -> Executor:
        return self.choice.executor

    def job(self, run_id: str) -> JobDir:
        return JobDir.of(self.runs_dir, run_id)

    def workdir(self, run: Run) -> Path:
        return self.job(run.id).root

    def start(self, run_id: str) -> None:
        """QUEUED -> INITIALIZING -> RUNNING. Idempotent: only the caller that wins the
        QUEUED -> INITIALIZING compare-and-set starts the engine. A run stays QUEUED while
        ``max_active`` runs are active; the reconciler starts it when there is room."""
        if self._active_count() >= self.tuning.max_active:
            return
        if not self.repo.transition(run_id, frozenset({S.QUEUED}), S.INITIALIZING):
            return
        run = self.repo.get(run_id)
        if run is None:
            return
        try:
            existing = self.executor.find(run.id, self.workdir(run))
            if existing is not None:  # a previous attempt started it: adopt, never resubmit
                log.warning("run %s was already submitted; adopting it", run_id)
                run.handle = existing
                self.repo.record_handle(run.id, existing)
            else:
                spec = self._prepare(run)
                run.handle = self.executor.submit(spec)
                label = run.handle.get("label")  # e.g. "SLURM job 1234"
                self.repo.record_handle(run.id, run.handle, spec.argv,
                                        f"submitted as {label}" if isinstance(label, str)
                                        else "")
        except Exception as exc:  # a failure to start is a system error of this run
            log.exception("run %s failed to start", run_id)
            self._finish(run, S.SYSTEM_ERROR, None, f"failed to start: {service_reason(exc)}")
            return
        if self.executor.poll(run.handle).state in (S.QUEUED, S.UNKNOWN):
            fresh = self.repo.get(run_id)  # waits for its scheduler: stays INITIALIZING
            if fresh is not None and fresh.state != S.INITIALIZING:
                self._canceled_while_starting(run)
        elif not self.repo.transition(run_id, frozenset({S.INITIALIZING}), S.RUNNING,
                                      self.clock()):
            self._canceled_while_starting(run)

    def _canceled_while_starting(self, run: Run) -> None:
        """A cancel arrived between INITIALIZING and the handle being saved: stop the
        engine we just started (the run is CANCELING or already CANCELED)."""
        fresh = self.repo.get(run.id)
        if fresh is not None and fresh.state in (S.CANCELING, S.CANCELED) and run.handle:
            log.info("run %s was canceled while starting; stopping its engine", run.id)
            self.executor.cancel(run.handle)

    def _active_count(self) -> int:
        return sum(1 for r in self.repo.active() if r.state != S.QUEUED)

    def start_queued(self, start: Callable[[str], None] | None = None) -> None:
        """Start the oldest queued runs while there is room (called by the reconciler).
        ``start`` replaces ``self.start`` (a Celery worker holds a start lease around it)."""
        for run in self.repo.active():
            if run.state == S.QUEUED:
                if self._active_count() >= self.tuning.max_active:
                    return
                (start or self.start)(run.id)

    def _prepare(self, run: Run) -> ExecutionSpec:
        if run.is_task:
            return self._task_jobs().prepare(run, self.job(run.id), self.choice)
        entry = self.catalog.resolve(f"{run.workflow_id}@{run.workflow_version}")
        if entry.bundle_digest != run.bundle_digest:
            raise RuntimeError("catalog entry changed since submission")
        job = self.job(run.id)
        self.files.copy_bundle(job, self.bundles[entry.ref])
        self._check_copied_bundle(run, entry, job)
        params = self.data.stage(entry, run.request.workflow_params, job)
        self.files.write_params(job, params)
        engine = self.engines[entry.engine]
        resources = job_resources(entry.resources, run.engine_options, self.choice.limits)
        account = self.choice.job_account(run)
        argv = engine.argv(entry, job.workflow, job.params, job.root, run.engine_options,
                           target=self.choice.engine_target(account, resources))
        return ExecutionSpec(run_id=run.id, argv=tuple(argv), workdir=job.root,
                             stdout=job.stdout, stderr=job.stderr,
                             resources=resources, account=account)

    def _task_jobs(self) -> TaskJobs:
        if self.tasks is None:
            raise RuntimeError("this service runs no TES tasks")
        return self.tasks

    def _check_copied_bundle(self, run: Run, entry: WorkflowEntry, job: JobDir) -> None:
        """The copy the run will execute must hash to the digest the allowlist pins (the
        catalog folder may have changed since start-up); else a ``catalog.drift`` event
        and the run ends in SYSTEM_ERROR without starting."""
        found = self.files.bundle_digest(job)
        if found == entry.bundle_digest:
            return
        self.audit.append(AuditEvent(
            action="catalog.drift", actor="system", outcome="refused", target=run.id,
            details={"workflow": entry.ref, "approved": entry.bundle_digest,
                     "found": found}))
        raise CatalogDrift(f"the bundle of {entry.ref} changed on disk since it was "
                           f"approved (the copy hashes to {found}, the allowlist pins "
                           f"{entry.bundle_digest}); the run was not started")

    def cancel(self, run_id: str) -> None:
        run = self.repo.get(run_id)
        if run is None or run.state != S.CANCELING:
            return
        if run.handle:
            self.executor.cancel(run.handle)
        self.reconcile(run)

    def recover(self, dispatcher: Dispatcher) -> None:
        """At start-up: re-enqueue queued runs and re-attach to everything else."""
        for run in self.repo.active():
            try:
                if run.state == S.QUEUED:
                    dispatcher.enqueue(run.id)
                elif run.state == S.INITIALIZING and not run.handle:
                    self._adopt_or_requeue(run, dispatcher)
                else:
                    self.reconcile(run)
            except Exception:  # one broken run must not stop the service from starting
                log.exception("recovering run %s failed", run.id)

    def _adopt_or_requeue(self, run: Run, dispatcher: Dispatcher) -> None:
        handle = self.executor.find(run.id, self.workdir(run))
        if handle is not None:
            run.handle = handle
            self.repo.record_handle(run.id, handle)
            self.reconcile(run)
        elif self.repo.transition(run.id, frozenset({S.INITIALIZING}), S.QUEUED):
            dispatcher.enqueue(run.id)

    def touch_start_lease(self, run_id: str) -> None:
        """Record durably (the time of the job's start lease, from this clock) that a live
        worker is starting ``run_id``; that worker refreshes it while the step runs."""
        self.files.touch_lease(self.job(run_id), self.clock().timestamp())

    def recover_stale_starts(self, dispatcher: Dispatcher) -> None:
        """With several workers: a run INITIALIZING without a handle whose start lease was
        not refreshed for ``start_lease_seconds`` lost its worker mid-step. Adopt what that
        worker submitted, else requeue the run (compare-and-set, so one reconciler wins)."""
        for run in self.repo.active():
            if run.state == S.INITIALIZING and not run.handle and self._start_stale(run):
                log.warning("run %s: its start step was abandoned; recovering it", run.id)
                try:
                    self._adopt_or_requeue(run, dispatcher)
                except Exception:  # one bad run must not stop the others
                    log.exception("recovering run %s failed", run.id)

    def _start_stale(self, run: Run) -> bool:
        since = self.files.lease_time(self.job(run.id))
        if since is None:  # started by a process that holds no leases
            since = run.created_at.timestamp()
        return self.clock().timestamp() - since > self.tuning.start_lease_seconds

    def reconcile_all(self) -> None:
        for run in self.repo.active():
            if run.state in (S.INITIALIZING, S.RUNNING, S.CANCELING, S.PAUSED):
                with log_context.run(run.id):
                    try:
                        self.reconcile(run)
                    except Exception:  # one bad run must not stop the others
                        log.exception("reconciling run %s failed", run.id)

    def reconcile(self, run: Run) -> None:
        if not run.handle:
            if run.state == S.CANCELING:
                found = self.executor.find(run.id, self.workdir(run))
                if found is not None:
                    self.executor.cancel(found)
                self._finish(run, S.CANCELED, None, "canceled before it started")
            return
        status = self.executor.poll(run.handle)
        engine = self.engines.get(run.engine)
        if run.is_task and self.tasks is not None:
            self.task_logs.replace_tasks(run.id, self.tasks.task_logs(run, self.job(run.id)))
        elif engine is not None:
            self.task_logs.replace_tasks(run.id, engine.task_logs(self.workdir(run)))
        if not is_final(status.state):
            self._still_running(run, status)
            return
        target = S.CANCELED if run.state == S.CANCELING else status.state
        self._finish(run, target, status.exit_code, status.message)

    def _still_running(self, run: Run, status: ExecutionStatus) -> None:
        """RUNNING and PAUSED follow the executor; QUEUED (the scheduler holds the job)
        and UNKNOWN (the scheduler does not answer) leave the run as it is."""
        if run.state == S.CANCELING and run.handle:
            self.executor.cancel(run.handle)
        elif status.state == S.RUNNING and run.state in (S.INITIALIZING, S.PAUSED):
            self.repo.transition(run.id, frozenset({run.state}), S.RUNNING,
                                 self.clock() if run.state == S.INITIALIZING else None)
        elif status.state == S.PAUSED and run.state == S.RUNNING:
            self.repo.transition(run.id, frozenset({S.RUNNING}), S.PAUSED)

    def _finish(self, run: Run, target: RunState, exit_code: int | None, message: str) -> None:
        """Move the run to a final state with its outputs, exit code and end time in one
        guarded write. Only the reconciler that claims the finish copies the outputs into
        quarantine; another one that arrives meanwhile leaves the run to it."""
        fresh = self.repo.get(run.id)
        if fresh is None or is_final(fresh.state):
            return
        if not can_move(fresh.state, target):
            log.error("run %s: %s -> %s is not allowed; recording SYSTEM_ERROR",
                      run.id, fresh.state, target)
            message, target = f"{message} (unexpected {target.value} after "\
                f"{fresh.state.value})", S.SYSTEM_ERROR
        token, now = uuid.uuid4().hex, self.clock()
        until = now + timedelta(seconds=self.tuning.finish_claim_seconds)
        if not self.repo.claim_finish(run.id, fresh.state, token, now, until):
            return  # another reconciler is finishing it, or it moved meanwhile
        try:
            outputs = self._hash_outputs(fresh)
        except Exception as exc:  # a quarantine that cannot be written ends the run
            log.exception("run %s: outputs could not be quarantined", run.id)
            message = f"{message}; outputs could not be quarantined: " \
                f"{service_reason(exc)}".lstrip("; ")
            target, outputs = S.SYSTEM_ERROR, []
        ending = RunEnding(target, self.clock(), exit_code, outputs, message[:2000])
        if self.repo.finish(run.id, token, fresh.state, ending):
            return
        if self.repo.finish(run.id, token, S.CANCELING, replace(ending, state=S.CANCELED)):
            return  # canceled while its outputs were copied
        self.repo.release_finish(run.id, token)

    def _hash_outputs(self, run: Run) -> list[OutputFile]:
        """The declared outputs, copied into the project's quarantine (hashed while they
        stream), and the engine's logs beside them (``_logs/``: output too)."""
        engine = self.engines.get(run.engine)
        entry = next((e for e in self.catalog.entries()
                      if (e.id, e.version) == (run.workflow_id, run.workflow_version)), None)
        job = self.job(run.id)
        if not self.files.exists(job):
            return []
        self.data.quarantine_logs(run.project, run.id, job)
        if run.is_task:
            return self._task_jobs().outputs(run, job)
        if engine is None or entry is None:
            return []  # an entry removed from the catalog lists no outputs; the run ends
        found = [p for p in engine.outputs(entry, job.root)
                 if not p.as_posix().startswith(LOG_PREFIX)]  # reserved for the logs
        return self.data.quarantine(run.project, run.id, engine.output_dir(job.root), found)
