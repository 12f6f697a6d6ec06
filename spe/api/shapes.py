"""Domain objects to WES / SPE response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spe.domain.catalog import WorkflowEntry
from spe.domain.models import Run, TaskLog
from spe.domain.policy import Access
from spe.domain.run_summary import RunSummary

Body = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC (``isoformat``: about twice as fast as strftime)."""
    if not value:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="seconds")[:19] + "Z"


def _drop_none(body: Body) -> Body:
    return {k: v for k, v in body.items() if v is not None}


def run_summary(run: Run) -> Body:
    return _drop_none({"run_id": run.id, "state": run.state.value,
                       "start_time": iso(run.start_time), "end_time": iso(run.end_time),
                       "tags": dict(run.request.tags),
                       "workflow": f"{run.workflow_id}@{run.workflow_version}"})


def summary(run: RunSummary) -> Body:
    """``run_summary`` of a narrow read: the same body."""
    body: Body = {"run_id": run.id, "state": run.state.value}
    if run.start_time is not None:
        body["start_time"] = iso(run.start_time)
    if run.end_time is not None:
        body["end_time"] = iso(run.end_time)
    body["tags"] = dict(run.tags)
    body["workflow"] = run.workflow
    return body


def outputs(run: Run) -> Body:
    return {o.path: {"class": "File", "size": o.size, "checksum": f"sha256:{o.sha256}"}
            for o in run.outputs}


def run_log(run: Run, base_url: str, logs_direct: bool = False) -> Body:
    """WES RunLog. ``stdout``/``stderr`` are URLs of the engine's log only where the run's
    project lets its researchers read it directly (``logs: direct``); elsewhere the log
    is output of the run and leaves through the airlock, so there is no URL."""
    logs = f"{base_url}/spe/v1/runs/{run.id}/logs" if logs_direct else None
    return {
        "run_id": run.id,
        "request": run.request.to_wes(),
        "state": run.state.value,
        "run_log": _drop_none({
            "name": f"{run.workflow_id}@{run.workflow_version}",
            "cmd": list(run.cmd),
            "start_time": iso(run.start_time),
            "end_time": iso(run.end_time),
            "stdout": f"{logs}/stdout" if logs else None,
            "stderr": f"{logs}/stderr" if logs else None,
            "exit_code": run.exit_code,
            "system_logs": list(run.system_logs),
        }),
        "task_logs_url": f"{base_url}/ga4gh/wes/v1/runs/{run.id}/tasks",
        "task_logs": None,
        "outputs": outputs(run),
    }


def task_log(task: TaskLog) -> Body:
    """WES TaskLog: what the service reads off the engine's log as structure (job id, rule
    name, times, exit code, scheduler ids), never the engine's text: a job's command line,
    as the engine printed it, may carry values a workflow derived from the data, so
    ``cmd`` is not returned."""
    return _drop_none({
        "id": task.id, "name": task.name,
        "start_time": iso(task.start_time), "end_time": iso(task.end_time),
        "exit_code": task.exit_code, "system_logs": list(task.system_logs),
    })


def workflow(entry: WorkflowEntry) -> Body:
    return {
        "id": entry.id, "version": entry.version, "ref": entry.ref, "name": entry.name,
        "description": entry.description, "workflow_type": entry.workflow_type,
        "workflow_type_version": entry.workflow_type_version,
        "workflow_engine": entry.engine, "bundle_digest": entry.bundle_digest,
        "entrypoint": entry.entrypoint,
        "params_schema": entry.params_schema,
        "engine_options": [_drop_none({
            "name": o.name, "type": o.type, "default": o.default,
            "description": o.description, "minimum": o.minimum, "maximum": o.maximum,
            "enum": list(o.choices) or None,
        }) for o in entry.engine_options],
        "outputs": list(entry.outputs),
        "examples": list(entry.examples),
        "approval": {"approved_by": list(entry.approved_by),
                     "approved_at": entry.approved_at},
    }


def me(access: Access, titles: dict[str, str]) -> Body:
    who = access.principal
    return {
        "sub": who.sub, "username": who.username, "email": who.email, "issuer": who.issuer,
        "entitlements": [str(e) for e in who.entitlements],
        "projects": [{"id": p, "title": titles.get(p, p), "roles": sorted(roles)}
                     for p, roles in sorted(access.projects.items())],
        "global_roles": sorted(access.global_roles),
        "datasets": list(access.datasets),
        "visas": [{"type": v.type, "value": v.value, "source": v.source, "by": v.by,
                   "valid_until": v.valid_until} for v in who.visas],
    }
