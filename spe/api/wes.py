"""WES 1.1 controllers, named after the operationIds of spe/openapi/wes.yaml.
Each: authenticate, parse, call a service, shape the response."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import flask

from spe.api import context, shapes
from spe.api.security import Authenticator
from spe.domain.errors import DomainError, InvalidRequest
from spe.domain.models import RUN, Principal, RunFilter
from spe.domain.states import RunState
from spe.services.runs import RunService
from spe.services.service_info import ServiceInfo
from spe.services.submission import Submission

Body = dict[str, Any]
JSON_OBJECT_FIELDS = ("workflow_params", "tags", "workflow_engine_parameters")
TEXT_FIELDS = ("workflow_type", "workflow_type_version", "workflow_url", "workflow_engine",
               "workflow_engine_version")


def _tags(raw: list[str] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in raw or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise InvalidRequest("tag filters are key:value", [("/tag", item[:100])])
        pairs.append((key, value))
    return tuple(pairs)


def _states(raw: list[str] | None) -> tuple[RunState, ...]:
    try:
        return tuple(RunState(s) for s in raw or [])
    except ValueError as exc:
        raise InvalidRequest("unknown state filter", [("/state", str(exc)[:100])]) from exc


def _json_fields(body: object) -> dict[str, str]:
    """A JSON ``RunRequest`` as the form fields of a multipart one: the object-valued
    fields (``workflow_params``, ``tags``, ``workflow_engine_parameters``) may be objects
    or JSON-encoded strings, every other field is a string."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", [("", "not an object")])
    fields, errors = {}, []
    for name, value in body.items():
        if value is None or name not in JSON_OBJECT_FIELDS + TEXT_FIELDS:
            continue  # as in a multipart form, fields WES does not define are ignored
        if name in JSON_OBJECT_FIELDS and isinstance(value, dict):
            fields[name] = json.dumps(value)
        elif isinstance(value, str):
            fields[name] = value
        else:
            errors.append((f"/{name}", "must be a string" if name not in JSON_OBJECT_FIELDS
                           else "must be an object or a JSON-encoded object"))
    if errors:
        raise InvalidRequest("the run request has fields of the wrong type", errors[:20])
    return fields


def _submission() -> Submission:
    """The request as a ``Submission``: multipart (with attachments), or, an extension
    for generic clients, a JSON ``RunRequest`` or an urlencoded form (no attachments)."""
    key = flask.request.headers.get("Idempotency-Key", "").strip()
    if flask.request.mimetype == "application/json":
        return Submission(fields=_json_fields(flask.request.get_json(silent=True)),
                          idempotency_key=key)
    form = flask.request.form
    fields = {k: form.get(k, "") for k in form}
    files = [(f.filename or "", f.read()) for f in flask.request.files.getlist(
        "workflow_attachment")]
    unexpected = [k for k in flask.request.files if k != "workflow_attachment"]
    if unexpected:
        raise InvalidRequest("unexpected file fields", [(f"/{k}", "not accepted")
                                                        for k in unexpected[:10]])
    return Submission(fields=fields, attachments=files, idempotency_key=key)


@dataclass
class WesApi:
    runs: RunService
    info: ServiceInfo
    authenticate: Authenticator
    public_url: str = ""

    def _who(self) -> Principal:
        return context.principal()

    def GetServiceInfo(self) -> Body:  # noqa: N802 - operationId
        header = context.authorization_header()
        who = None
        if header:
            try:
                who = self.authenticate(header, context.client_address())
            except DomainError:  # service-info is public; a bad token just counts nothing
                who = None
        return self.info.describe(self.runs.state_counts(who),
                                  context.base_url(self.public_url))

    def ListRuns(self, page_size: int = 50, page_token: str = "",  # noqa: N802
                 state: list[str] | None = None, tag: list[str] | None = None,
                 workflow: str = "") -> Body:
        who = self._who()
        flt = RunFilter(states=_states(state), tags=_tags(tag), kind=RUN, workflow=workflow)
        page = self.runs.summaries(who, page_size, page_token, flt)
        return {"runs": [shapes.summary(r) for r in page.items],
                "next_page_token": page.next_token}

    def RunWorkflow(self, **_ignored: Any) -> Body:  # noqa: N802
        who = self._who()
        return {"run_id": self.runs.submit(who, _submission())}

    def GetRunLog(self, run_id: str) -> Body:  # noqa: N802
        run = self.runs.get(self._who(), run_id)
        return shapes.run_log(run, context.base_url(self.public_url),
                              self.runs.logs_direct(run))

    def GetRunStatus(self, run_id: str) -> Body:  # noqa: N802
        run = self.runs.status(self._who(), run_id)
        return {"run_id": run.id, "state": run.state.value}

    def ListTasks(self, run_id: str, page_size: int = 50,  # noqa: N802
                  page_token: str = "") -> Body:
        page = self.runs.tasks(self._who(), run_id, page_size, page_token)
        return {"task_logs": [shapes.task_log(t) for t in page.items],
                "next_page_token": page.next_token}

    def GetTask(self, run_id: str, task_id: str) -> Body:  # noqa: N802
        return shapes.task_log(self.runs.task(self._who(), run_id, task_id))

    def CancelRun(self, run_id: str) -> Body:  # noqa: N802
        return {"run_id": self.runs.cancel(self._who(), run_id)}
