"""Use cases of the TES API: create, read, list and cancel tasks.

A task is a job of kind ``task`` beside the runs: the same repository, identity, project,
visibility and permission rules (a task is read, canceled and purged as a run is), the
same executor, reconciler, quarantine, airlock, audit and retention. What a task may use
is checked when it is created, so that a task that can never run is refused at once:
every image in the catalog with its bytes unchanged (403 naming it), every input inside a
dataset the caller may use in the task's project (403/400 as for a workflow's inputs),
every output into the task's quarantine (400), backend parameters from the closed list
(400 when strict)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from spe.domain.errors import DomainError, Forbidden, ServiceUnavailable
from spe.domain.jobdir import LOG_STREAMS, JobDir
from spe.domain.models import (
    TASK,
    AuditEvent,
    Page,
    Principal,
    Run,
    RunFilter,
    RunRequest,
    SubmissionKey,
)
from spe.domain.ports import SubmissionKeyTaken
from spe.domain.states import RunState
from spe.domain.tes import TaskRequest, parse_task, to_document
from spe.domain.tes_resources import backend_parameters, noted
from spe.services.idempotency import key_of, same_request
from spe.services.runs import RUN_READ, RUN_READ_LOGS, RunService
from spe.services.submission import Submission
from spe.services.task_jobs import TaskJobs

ENGINE = "tes"


def _fingerprint(body: object) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TaskService:
    runs: RunService
    jobs: TaskJobs

    def create(self, who: Principal, body: object, idempotency_key: str = "") -> str:
        """Accept a task and return its id (a key this caller used within the window
        returns that key's task)."""
        try:
            key = self._key(who, body, idempotency_key)
            if key is not None and (used := self.runs.repo.submission_key(
                    who.sub, key.key, key.since)):
                return self._replay(who, key, *used)
            task = parse_task(body)
            run = self._admit(who, task)
        except DomainError as exc:
            self.runs._audit("task.create", who, "denied", "", {
                "reason": str(exc)[:500], "error": type(exc).__name__})
            raise
        event = AuditEvent(action="task.create", actor=who.sub, outcome="accepted",
                           target=run.id, at=run.created_at,
                           details={"project": run.project,
                                    "images": run.engine_options["images"]})
        try:
            self.runs.repo.add(run, event, key)
        except SubmissionKeyTaken as taken:
            if key is None:
                raise
            return self._replay(who, key, taken.run_id, taken.request_digest)
        self.runs.dispatcher.enqueue(run.id)
        return run.id

    def _admit(self, who: Principal, task: TaskRequest) -> Run:
        runs = self.runs
        project = runs.gate.submission_project(who, task.tags)
        params, dropped = backend_parameters(task.resources)
        if task.resources is not None:  # unsupported keys are never stored nor echoed
            task = replace(task, resources=replace(
                task.resources, backend_parameters={
                    k: v for k, v in task.resources.backend_parameters.items()
                    if k in params}))
        run_id = runs.new_id()
        images = self.jobs.check_images(task, who.sub, run_id)
        self.jobs.authorize_inputs(who, task, project)
        runs.admission.can_execute(who, project)
        if not runs.admission.queue_ready():
            raise ServiceUnavailable("the task queue is unavailable, so the task was not "
                                     "accepted; please create it again later")
        notes = [n for n in (dropped, noted(task.resources)) if n]
        return Run(id=run_id, owner_sub=who.sub, owner_name=who.username,
                   state=RunState.QUEUED, kind=TASK, name=task.name,
                   task=to_document(task),
                   request=RunRequest("", "TES", "1.1", tags=dict(task.tags)),
                   workflow_id=ENGINE, workflow_version="1.1",
                   bundle_digest=next(iter(images.values())), engine=ENGINE,
                   engine_options={"images": images}, created_at=runs.clock(),
                   project=project, system_logs=notes)

    def _key(self, who: Principal, body: object, header: str) -> SubmissionKey | None:
        tags = body.get("tags") if isinstance(body, dict) else None
        raw_tags = json.dumps(tags) if isinstance(tags, dict) else ""
        key = key_of(Submission(fields={"tags": raw_tags}, idempotency_key=header))
        if not key:
            return None
        return SubmissionKey(who.sub, key, _fingerprint(body), self.runs.clock(),
                             self.runs.admission.key_window)

    def _replay(self, who: Principal, key: SubmissionKey, task_id: str, digest: str) -> str:
        self.get(who, task_id)
        same_request(key, task_id, digest)
        self.runs._audit("task.create", who, "replayed", task_id,
                         {"idempotency_key": key.key})
        return task_id

    def get(self, who: Principal, task_id: str) -> Run:
        return self.runs.get(who, task_id, RUN_READ, kind=TASK)

    def page(self, who: Principal, page_size: int, page_token: str,
             flt: RunFilter) -> Page[Run]:
        return self.runs.list(who, page_size, page_token, replace(flt, kind=TASK))

    def cancel(self, who: Principal, task_id: str) -> None:
        self.runs.cancel(who, task_id, kind=TASK)

    def logs_direct(self, task: Run) -> bool:
        return self.runs.logs_direct(task)

    def executor_streams(self, who: Principal, task: Run, count: int,
                         max_bytes: int) -> list[tuple[str, str]]:
        """Each executor's stdout and stderr (their last ``max_bytes``), only in a project
        that opted in with ``logs: direct`` and for a caller who may read logs (the read
        is audited); elsewhere they are output of the task, empty here, and leave through
        the airlock (``_logs/executor-<i>-stdout.txt``)."""
        empty = [("", "")] * count
        if not self.runs.logs_direct(task):
            return empty
        try:
            self.runs.gate.check_run(who, task, RUN_READ_LOGS, task.id)
        except Forbidden:
            return empty
        job = JobDir.of(self.runs.runs_dir, task.id)
        tails = [tuple(self._tail(job.executor_stream(i, s), max_bytes)
                       for s in LOG_STREAMS) for i in range(count)]
        if any(out or err for out, err in tails):
            self.runs._audit("task.read_logs", who, "granted", task.id,
                             {"project": task.project})
        return [(out, err) for out, err in tails]

    def _tail(self, path: Path, max_bytes: int) -> str:
        data = self.runs.files.tail(path, max_bytes)
        return data.decode("utf-8", "replace") if data else ""
