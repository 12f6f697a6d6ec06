"""TES 1.1 controllers, named after the operationIds of spe/openapi/tes.yaml.
Each: authenticate, parse, call a service, shape the response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flask

from spe.api import context, tes_shapes
from spe.domain.errors import InvalidRequest
from spe.domain.models import RunFilter, TaskLog
from spe.domain.states import RunState
from spe.domain.tes import MAX_EXECUTORS
from spe.services.service_info import TesServiceInfo
from spe.services.tasks import TaskService

Body = dict[str, Any]
STREAM_MAX_BYTES = 64 * 1024


def _view(view: str) -> str:
    if view not in tes_shapes.VIEWS:
        raise InvalidRequest("unknown view", [("/view", "MINIMAL, BASIC or FULL")])
    return view


def _tags(keys: list[str] | None, values: list[str] | None) -> tuple[tuple[str, str | None],
                                                                    ...]:
    """TES tag filters: ``tag_key[i]`` with ``tag_value[i]``; a missing or empty value
    matches any value of the key; every pair must match."""
    keys, values = keys or [], values or []
    if len(values) > len(keys):
        raise InvalidRequest("more tag_value than tag_key parameters",
                             [("/tag_value", "each value pairs with the tag_key before it")])
    if len(keys) > 20 or any(not k for k in keys):
        raise InvalidRequest("at most 20 non-empty tag_key parameters", [("/tag_key", "")])
    return tuple((k, values[i] or None if i < len(values) else None)
                 for i, k in enumerate(keys))


@dataclass
class TesApi:
    tasks: TaskService
    info: TesServiceInfo

    def GetServiceInfo(self) -> Body:  # noqa: N802 - operationId
        return self.info.describe()

    def CreateTask(self, body: Any = None, **_ignored: Any) -> Body:  # noqa: N802
        who = context.principal()
        key = flask.request.headers.get("Idempotency-Key", "").strip()
        return {"id": self.tasks.create(who, body, key)}

    def ListTasks(self, *, name_prefix: str = "", state: str | None = None,  # noqa: N802
                  tag_key: list[str] | None = None, tag_value: list[str] | None = None,
                  page_size: int = 256, page_token: str = "", view: str = "MINIMAL") -> Body:
        who = context.principal()
        # the spec's tesState defaults to UNKNOWN, which connexion fills in: no filter
        flt = RunFilter(states=(RunState(state),) if state and state != "UNKNOWN" else (),
                        tags=_tags(tag_key, tag_value), name_prefix=name_prefix)
        page = self.tasks.page(who, page_size, page_token, flt)
        view = _view(view)
        executors = self.tasks.runs.task_logs.tasks_of([t.id for t in page.items],
                                                       MAX_EXECUTORS) if view != "MINIMAL" \
            else {}
        body: Body = {"tasks": [self._shape(who, t, view, executors.get(t.id))
                                for t in page.items]}
        if page.next_token:
            body["next_page_token"] = page.next_token
        return body

    def GetTask(self, id: str, view: str = "MINIMAL") -> Body:  # noqa: N802 - TES names
        who = context.principal()
        return self._shape(who, self.tasks.get(who, id), _view(view))

    def CancelTask(self, id: str) -> Body:  # noqa: N802
        self.tasks.cancel(context.principal(), id)
        return {}

    def _shape(self, who: Any, task: Any, view: str,
               executors: list[TaskLog] | None = None) -> Body:
        if view == "MINIMAL":
            return tes_shapes.task(task, view)
        if executors is None:
            executors = self.tasks.runs.task_logs.tasks(task.id, 0, MAX_EXECUTORS)
        streams = self.tasks.executor_streams(who, task, len(executors), STREAM_MAX_BYTES) \
            if view == "FULL" else []
        return tes_shapes.task(task, view, executors, streams)
