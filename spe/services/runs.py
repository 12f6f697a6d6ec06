"""Use cases of the WES API: submit, read, list, cancel, and read task logs.

Every run belongs to a project; who may see or act on it is decided by ``Gate`` (the
permission table applied to the policy). A run a caller may not read does not exist for
them (404), so run ids do not leak."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from spe.domain.catalog import Catalog
from spe.domain.clock import utc_now
from spe.domain.errors import Conflict, DomainError, Forbidden, NotFound, ServiceUnavailable
from spe.domain.jobdir import LOG_STREAMS, JobDir, quarantined_log
from spe.domain.models import (
    RUN,
    AuditEvent,
    Page,
    Principal,
    Run,
    RunFilter,
    SubmissionKey,
    TaskLog,
    Visibility,
)
from spe.domain.paging import PageTokens
from spe.domain.permissions import permission
from spe.domain.ports import (
    AuditLog,
    Dispatcher,
    JobFiles,
    RunRepository,
    SubmissionKeyTaken,
    TaskLogRepository,
)
from spe.domain.progress import MAX_BYTES as PROGRESS_MAX_BYTES
from spe.domain.progress import Progress, parse_progress
from spe.domain.run_summary import RunSummary
from spe.domain.states import RunState, is_final
from spe.services.access import Gate
from spe.services.data import DataService
from spe.services.idempotency import same_request, submission_key
from spe.services.submission import Limits, Submission, plan

RUN_READ = permission("run.read")
RUN_READ_LOGS = permission("run.read_logs")
RUN_CANCEL = permission("run.cancel")
RUN_PURGE = permission("run.purge")


def _new_id() -> str:
    return uuid.uuid4().hex


def _always_ready() -> bool:
    return True


def _anyone_may_execute(who: Principal, project: str) -> None:
    return None


def _scope(visible: Visibility, flt: RunFilter) -> str:
    """What a page token is bound to: the caller's visibility and every filter."""
    return (f"{flt.kind}s|{visible}|{sorted(s.value for s in flt.states)}|"
            f"{sorted(flt.tags, key=repr)}|{flt.name_prefix}|{flt.workflow}")


@dataclass(frozen=True)
class Admission:
    """What a submission must pass before its run is stored, besides the request's own
    rules: the size ``limits``; ``can_execute`` raises Forbidden when the executor cannot
    run work for this caller in this project (on SLURM: no POSIX account or project
    group); ``queue_ready`` says whether the dispatcher's broker is reachable; and an
    idempotency key names its run for ``key_window``."""

    limits: Limits = field(default_factory=Limits)
    can_execute: Callable[[Principal, str], object] = _anyone_may_execute
    queue_ready: Callable[[], bool] = _always_ready
    key_window: timedelta = timedelta(hours=24)


@dataclass
class RunService:
    repo: RunRepository
    task_logs: TaskLogRepository
    catalog: Catalog
    dispatcher: Dispatcher
    audit: AuditLog
    tokens: PageTokens
    runs_dir: Path
    engine_versions: Callable[[], dict[str, str]]
    gate: Gate
    data: DataService
    files: JobFiles
    admission: Admission = field(default_factory=Admission)
    clock: Callable[[], datetime] = utc_now
    new_id: Callable[[], str] = _new_id

    def submit(self, who: Principal, sub: Submission) -> str:
        """Accept a run and return its id. A submission with a key that this caller used
        within ``key_window`` returns that key's run instead (``services.idempotency``)."""
        try:
            key = submission_key(who.sub, sub, self.clock(), self.admission.key_window)
            if key is not None and (used := self.repo.submission_key(who.sub, key.key,
                                                                      key.since)):
                return self._replay(who, key, *used)
            p = plan(self.catalog, sub, self.admission.limits, self.engine_versions())
            project = self.gate.submission_project(who, p.request.tags)
            self.data.authorize(who, p.entry, p.params, project)
            self.admission.can_execute(who, project)
            if not self.admission.queue_ready():
                raise ServiceUnavailable("the run queue is unavailable, so the run was not "
                                         "accepted; please submit it again later")
        except DomainError as exc:
            self._audit("run.submit", who, "denied", "", {"reason": str(exc)[:500],
                                                          "error": type(exc).__name__})
            raise
        run = Run(
            id=self.new_id(), owner_sub=who.sub, owner_name=who.username,
            state=RunState.QUEUED, request=p.request, workflow_id=p.entry.id,
            workflow_version=p.entry.version, bundle_digest=p.entry.bundle_digest,
            engine=p.entry.engine, engine_options=p.engine_options, created_at=self.clock(),
            project=project,
        )
        run.request.workflow_params = p.params
        event = AuditEvent(action="run.submit", actor=who.sub, outcome="accepted",
                           target=run.id, at=self.clock(),
                           details={"workflow": p.entry.ref, "project": project,
                                    "bundle_digest": p.entry.bundle_digest})
        try:
            self.repo.add(run, event, key)
        except SubmissionKeyTaken as taken:  # the same key, submitted concurrently
            if key is None:
                raise
            return self._replay(who, key, taken.run_id, taken.request_digest)
        self.dispatcher.enqueue(run.id)
        return run.id

    def _replay(self, who: Principal, key: SubmissionKey, run_id: str, digest: str) -> str:
        """The key's run, for a caller who may still read it (an ex-member of its project
        gets 404, as for any of their old runs)."""
        self.gate.check_run(who, self.repo.get(run_id), RUN_READ, run_id)
        same_request(key, run_id, digest)
        self._audit("run.submit", who, "replayed", run_id, {"idempotency_key": key.key})
        return run_id

    def get(self, who: Principal, run_id: str, perm: str = RUN_READ,
            kind: str = RUN) -> Run:
        """The run (or, with ``kind`` TASK, the TES task; "" for either) if ``who`` may
        ``perm`` it; a job of another kind does not exist here (404)."""
        job = self.repo.get(run_id)
        if job is not None and kind and job.kind != kind:
            job = None
        return self.gate.check_run(who, job, perm, run_id)

    def list(self, who: Principal, page_size: int, page_token: str,
             flt: RunFilter) -> Page[Run]:
        visible = self.gate.visibility(who)
        scope = _scope(visible, flt)
        before = self.tokens.decode(page_token, scope) if page_token else None
        rows = self.repo.page(visible, flt, before, page_size + 1)
        items = rows[:page_size]
        token = self.tokens.encode(items[-1].seq, scope) if len(rows) > page_size else ""
        return Page(items=items, next_token=token)

    def summaries(self, who: Principal, page_size: int, page_token: str,
                  flt: RunFilter) -> Page[RunSummary]:
        """``list`` from a narrow query: what ``GET /runs`` shows, with the same tokens."""
        visible = self.gate.visibility(who)
        scope = _scope(visible, flt)  # the same tokens as ``list``
        before = self.tokens.decode(page_token, scope) if page_token else None
        rows = self.repo.summaries(visible, flt, before, page_size + 1)
        items = rows[:page_size]
        token = self.tokens.encode(items[-1].seq, scope) if len(rows) > page_size else ""
        return Page(items=items, next_token=token)

    def status(self, who: Principal, run_id: str) -> RunSummary:
        """The run's state (``get``'s authorisation, from a narrow query); a task's id is
        not a run's (404)."""
        found = self.repo.summary(run_id)
        return self.gate.check_run(who, found if found is None or found.kind == RUN else None,
                                   RUN_READ, run_id)

    def state_counts(self, who: Principal | None) -> dict[str, int]:
        counts = {s.value: 0 for s in RunState}
        if who is not None:
            counts.update(self.repo.state_counts(self.gate.visibility(who)))
        return counts

    def cancel(self, who: Principal, run_id: str, kind: str = RUN) -> str:
        run = self.get(who, run_id, RUN_CANCEL, kind)
        action = f"{run.kind}.cancel"
        if run.state in (RunState.CANCELING, RunState.CANCELED):
            return run.id
        if is_final(run.state):
            raise Conflict(f"{run.kind} {run.id} has already ended ({run.state.value})")
        if self.repo.transition(run.id, frozenset({RunState.QUEUED}), RunState.CANCELED,
                                self.clock()):
            self._audit(action, who, "canceled", run.id, {"from": "QUEUED"})
            return run.id
        active = frozenset({RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED})
        if not self.repo.transition(run.id, active, RunState.CANCELING):
            return self.cancel(who, run_id, kind)  # it moved meanwhile: decide again
        self._audit(action, who, "canceling", run.id, {"from": run.state.value})
        self.dispatcher.enqueue_cancel(run.id)
        return run.id

    def purge(self, who: Principal, run_id: str) -> dict[str, int]:
        """Remove a finished run's work directory and quarantined outputs. Its metadata
        (state, output names and digests) stays, marked as purged, for the audit trail."""
        run = self.get(who, run_id, RUN_PURGE, kind="")  # a run or a task
        if not is_final(run.state):
            raise Conflict(f"run {run.id} is {run.state.value}: cancel it before purging")
        return self._purge(run, who.sub, who.username)

    def sweep_retention(self) -> tuple[str, ...]:
        """Purge every finished run older than its project's ``retention_days``."""
        now = self.clock()
        self.repo.prune_submission_keys(now - self.admission.key_window)
        purged: tuple[str, ...] = ()
        before = None
        final = RunFilter(states=tuple(s for s in RunState if is_final(s)))
        while page := self.repo.page(Visibility("", everything=True), final, before, 500):
            before = page[-1].seq
            for run in page:
                project = self.gate.policy.project(run.project)
                days = project.retention_days if project else 0
                ended = run.end_time or run.created_at
                if days and run.purged_at is None and now - ended > timedelta(days=days):
                    self._purge(run, "system:retention", f"retention ({days} days)")
                    purged += (run.id,)
        return purged

    def _purge(self, run: Run, actor: str, by: str) -> dict[str, int]:
        removed_work = self.files.remove(JobDir.of(self.runs_dir, run.id))
        removed = self.data.purge_quarantine(run.project, run.id)
        if run.purged_at is None:
            at = self.clock()
            self.repo.mark_purged(run.id, at, f"purged by {by} at {at.isoformat()}")
        self.audit.append(AuditEvent(action="run.purge", actor=actor, outcome="purged",
                                     target=run.id, at=self.clock(),
                                     details={"work_dir": removed_work,
                                              "quarantined_files": removed}))
        return {"work_dir_removed": int(removed_work), "quarantined_files_removed": removed}

    def tasks(self, who: Principal, run_id: str, page_size: int,
              page_token: str) -> Page[TaskLog]:
        run = self.get(who, run_id)
        scope = f"tasks|{who.sub}|{run.id}"
        start = self.tokens.decode(page_token, scope) if page_token else 0
        rows = self.task_logs.tasks(run.id, start, page_size + 1)
        items = rows[:page_size]
        token = self.tokens.encode(start + page_size, scope) if len(rows) > page_size else ""
        return Page(items=items, next_token=token)

    def task(self, who: Principal, run_id: str, task_id: str) -> TaskLog:
        run = self.get(who, run_id)
        task = self.task_logs.task(run.id, task_id)
        if task is None:
            raise NotFound(f"task {task_id[:64]!r} of run {run.id} not found")
        return task

    def logs_direct(self, run: Run) -> bool:
        """Whether the run's project lets its researchers read engine logs directly."""
        project = self.gate.policy.project(run.project)
        return project is not None and project.logs == "direct"

    def log_tail(self, who: Principal, run_id: str, stream: str, max_bytes: int) -> bytes:
        """The last ``max_bytes`` of the engine's own stdout/stderr, only in a project that
        opted in with ``logs: direct`` (each read audited), never to operators. Elsewhere
        the log is output: 403 saying how to request its release through the airlock."""
        run = self.get(who, run_id, kind="")
        if stream not in LOG_STREAMS:
            raise NotFound(f"no {stream[:20]} log for run {run.id}")
        if not self.logs_direct(run):
            raise Forbidden(
                f"the engine's {stream} of run {run.id} is output of the run, so the API "
                "does not return it; ask for its release through the airlock with a "
                f"release request naming {quarantined_log(stream)} of this run",
                rule="logs.airlock")
        self.gate.check_run(who, run, RUN_READ_LOGS, run_id)
        tail = self.files.tail(JobDir.of(self.runs_dir, run.id).stream(stream), max_bytes)
        if tail is None:
            raise NotFound(f"no {stream} log for run {run.id}")
        self._audit("run.read_logs", who, "granted", run.id,
                    {"stream": stream, "project": run.project})
        return tail

    def progress(self, who: Principal, run_id: str) -> Progress:
        """The job counts the engine reported for the run (None: not reported, e.g. by an
        engine without a logger plugin): counts only, so readable like the task list."""
        run = self.get(who, run_id)
        return parse_progress(self.files.tail(JobDir.of(self.runs_dir, run.id).progress,
                                              PROGRESS_MAX_BYTES))

    def _audit(self, action: str, who: Principal, outcome: str, target: str,
               details: dict[str, object]) -> None:
        self.audit.append(AuditEvent(action=action, actor=who.sub, outcome=outcome,
                                     target=target, details=details, at=self.clock()))
