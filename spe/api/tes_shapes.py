"""Tasks to TES 1.1 response bodies, in the spec's three views, with exactly the spec's
keys (strict clients such as py-tes refuse any other): ``size_bytes`` a string,
``exit_code`` and ``cpu_cores`` integers, times RFC 3339."""

from __future__ import annotations

from typing import Any

from spe.api.shapes import iso
from spe.domain.models import Run, TaskLog
from spe.domain.tes import QUARANTINE_URL, TaskOutput, parse_task

Body = dict[str, Any]
VIEWS = ("MINIMAL", "BASIC", "FULL")


def _drop_none(body: Body) -> Body:
    return {k: v for k, v in body.items() if v is not None}


def container_path(outputs: tuple[TaskOutput, ...], name: str) -> str:
    """The container path an output recorded under ``name`` (its quarantine name) came
    from: an exact output, a file below a DIRECTORY output, or a wildcard match."""
    for out in outputs:
        if name == out.key and not out.wildcard and out.type == "FILE":
            return out.path
    for out in outputs:
        if name.startswith(out.key + "/"):
            rest = name[len(out.key) + 1:]
            return (out.path_prefix.rstrip("/") if out.wildcard else out.path) + "/" + rest
    return "/" + name


def _executor_log(log: TaskLog, streams: tuple[str, str] | None) -> Body:
    body = _drop_none({"start_time": iso(log.start_time), "end_time": iso(log.end_time),
                       "exit_code": log.exit_code})
    if streams is not None:
        body["stdout"], body["stderr"] = streams
    return body


def task_log(task: Run, executors: list[TaskLog], full: bool,
             streams: list[tuple[str, str]]) -> Body:
    """The task's one attempt (``tesTaskLog``). An executor is listed once it has ended
    (``exit_code`` is required by the spec, and a running one has none)."""
    executors = [log for log in executors if log.exit_code is not None]
    outputs = parse_task(task.task).outputs
    metadata = {}
    if task.handle and isinstance(task.handle.get("job_id"), str | int):
        metadata = {"executor": str(task.handle.get("executor", "")),
                    "job_id": str(task.handle["job_id"])}
    body: Body = _drop_none({
        "logs": [_executor_log(log, streams[i] if full and i < len(streams) else None)
                 for i, log in enumerate(executors)],
        "metadata": metadata or None,
        "start_time": iso(task.start_time), "end_time": iso(task.end_time),
        "outputs": [{"url": QUARANTINE_URL + o.path, "path": container_path(outputs, o.path),
                     "size_bytes": str(o.size)} for o in task.outputs],
    })
    if full:
        body["system_logs"] = list(task.system_logs)
    return body


def task(task: Run, view: str, executors: list[TaskLog] | None = None,
         streams: list[tuple[str, str]] | None = None) -> Body:
    """``tesTask`` in ``view`` (MINIMAL: id and state)."""
    body: Body = {"id": task.id, "state": task.state.value}
    if view == "MINIMAL":
        return body
    full = view == "FULL"
    doc = dict(task.task or {})
    if not full:
        doc["inputs"] = [{k: v for k, v in i.items() if k != "content"}
                         for i in doc.get("inputs", [])]
    body.update(doc)
    body["creation_time"] = iso(task.created_at)
    started = task.handle is not None or task.start_time is not None \
        or task.end_time is not None
    if started or executors:
        body["logs"] = [task_log(task, executors or [], full, streams or [])]
    return body
