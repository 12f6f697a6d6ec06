"""The run and release repositories that also tell the service log about every run's
life: one log line (with structured fields) per successful write that changes it. Every
change of a run goes through the repository's compare-and-set writes, so every run's life is
logged whichever service, worker or reconciler made the change:

| event          | when                                   | fields                               |
|----------------|----------------------------------------|--------------------------------------|
| run.accepted   | stored as QUEUED                       | workflow, engine, project, user      |
| run.started    | the executor took it (a new submission) | executor, executor_id                |
| run.adopted    | an earlier submission was re-attached   | executor, executor_id                |
| run.state      | a state change                         | from_state, state                    |
| run.ended      | a final state was written               | state, exit_code, duration_seconds   |
|                |                                        | (start to end), total_seconds        |
| run.purged     | its files were purged (retention, DELETE) | -                                  |

Release requests: ``release.submitted`` when filed, ``release.state`` for each move
(checks, release, revoke, withdraw...) and ``release.decided`` for the reviewers' decision
(APPROVED, REJECTED, RETURNED), with the request and run ids and the project.

Nothing from a run's request (params, data references) or a release's files is logged:
ids, names and states only."""

from __future__ import annotations

import logging
from datetime import datetime

from spe.adapters.db.releases import SqlReleaseRepository
from spe.adapters.db.repository import SqlRunRepository
from spe.domain.airlock import ReleaseRequest, ReleaseState, WorkClaim
from spe.domain.models import JSON, AuditEvent, Run, RunEnding, SubmissionKey
from spe.domain.states import FINAL_STATES, RunState

log = logging.getLogger("spe.runs")
release_log = logging.getLogger("spe.releases")


def executor_id(handle: JSON) -> str:
    """The scheduler's id of the job (SLURM job id, process id), for the log."""
    for key in ("job_id", "pid", "id"):
        value = handle.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return ""


class LoggedRunRepository(SqlRunRepository):
    def add(self, run: Run, event: AuditEvent | None = None,
            key: SubmissionKey | None = None) -> Run:
        added = super().add(run, event, key)
        log.info("run %s accepted: %s@%s", run.id, run.workflow_id, run.workflow_version,
                 extra={"event": "run.accepted", "run_id": run.id, "kind": run.kind,
                        "workflow": f"{run.workflow_id}@{run.workflow_version}",
                        "engine": run.engine, "project": run.project,
                        "user": run.owner_name, "state": run.state.value})
        return added

    def record_handle(self, run_id: str, handle: JSON, cmd: tuple[str, ...] | None = None,
                      note: str = "") -> bool:
        recorded = super().record_handle(run_id, handle, cmd, note)
        if recorded:
            event = "run.started" if cmd is not None else "run.adopted"
            executor, job = str(handle.get("executor", "")), executor_id(handle)
            log.info("run %s %s on %s %s", run_id, event.split(".")[1], executor, job,
                     extra={"event": event, "run_id": run_id, "executor": executor,
                            "executor_id": job})
        return recorded

    def transition(self, run_id: str, from_states: frozenset[RunState], to: RunState,
                   at: datetime | None = None) -> bool:
        moved = super().transition(run_id, from_states, to, at)
        if moved:
            before = "|".join(sorted(s.value for s in from_states))
            log.info("run %s: %s -> %s", run_id, before, to.value,
                     extra={"event": "run.state", "run_id": run_id, "from_state": before,
                            "state": to.value})
            if to in FINAL_STATES:
                self._ended(run_id)
        return moved

    def finish(self, run_id: str, token: str, from_state: RunState,
               ending: RunEnding) -> bool:
        finished = super().finish(run_id, token, from_state, ending)
        if finished:
            log.info("run %s: %s -> %s", run_id, from_state.value, ending.state.value,
                     extra={"event": "run.state", "run_id": run_id,
                            "from_state": from_state.value, "state": ending.state.value})
            self._ended(run_id)
        return finished

    def mark_purged(self, run_id: str, at: datetime, note: str) -> bool:
        purged = super().mark_purged(run_id, at, note)
        if purged:
            log.info("run %s purged", run_id, extra={"event": "run.purged", "run_id": run_id})
        return purged

    def _ended(self, run_id: str) -> None:
        run = self.get(run_id)
        if run is None:
            return
        end = run.end_time
        duration = (end - run.start_time).total_seconds() if end and run.start_time else None
        total = (end - run.created_at).total_seconds() if end else None
        log.info("run %s ended %s after %s s", run_id, run.state.value,
                 f"{total:.1f}" if total is not None else "?",
                 extra={"event": "run.ended", "run_id": run_id, "state": run.state.value,
                        "exit_code": run.exit_code, "duration_seconds": duration,
                        "total_seconds": total, "engine": run.engine, "kind": run.kind})


class LoggedReleaseRepository(SqlReleaseRepository):
    def add(self, request: ReleaseRequest, event: AuditEvent | None = None,
            claim: WorkClaim | None = None, open_limit: int | None = None) -> None:
        super().add(request, event, claim, open_limit)
        self._moved("release.submitted", request.id, "", request.state)

    def finish_release(self, request_id: str, token: str, released_at: datetime,
                       crate: JSON, event: AuditEvent) -> bool:
        released = super().finish_release(request_id, token, released_at, crate, event)
        if released:
            self._moved("release.state", request_id, ReleaseState.APPROVED.value,
                        ReleaseState.RELEASED)
        return released

    def transition(self, request_id: str, from_states: frozenset[ReleaseState],
                   to: ReleaseState, event: AuditEvent | None = None) -> bool:
        moved = super().transition(request_id, from_states, to, event)
        if moved:
            self._moved("release.state", request_id,
                        "|".join(sorted(s.value for s in from_states)), to)
        return moved

    def decide(self, request_id: str, outcome: ReleaseState, at: datetime,
               event: AuditEvent) -> bool:
        decided = super().decide(request_id, outcome, at, event)
        if decided:
            self._moved("release.decided", request_id, ReleaseState.IN_REVIEW.value, outcome)
        return decided

    def _moved(self, event: str, request_id: str, before: str, to: ReleaseState) -> None:
        request = self.get(request_id)
        release_log.info("release request %s: %s -> %s", request_id, before, to.value,
                         extra={"event": event, "release_id": request_id,
                                "run_id": request.run_id if request else "",
                                "project": request.project if request else "",
                                "from_state": before, "state": to.value})
