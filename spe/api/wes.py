"""WES 1.1 controllers, named after the operationIds of spe/openapi/wes.yaml.
Each: authenticate, parse, call a service, shape the response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flask

from spe.api import context, shapes
from spe.api.security import Authenticator
from spe.domain.errors import DomainError, InvalidRequest
from spe.domain.models import Principal, RunFilter
from spe.domain.states import RunState
from spe.services.runs import RunService
from spe.services.service_info import ServiceInfo
from spe.services.submission import Submission

Body = dict[str, Any]


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


def _submission() -> Submission:
    form = flask.request.form
    fields = {k: form.get(k, "") for k in form}
    files = [(f.filename or "", f.read()) for f in flask.request.files.getlist(
        "workflow_attachment")]
    unexpected = [k for k in flask.request.files if k != "workflow_attachment"]
    if unexpected:
        raise InvalidRequest("unexpected file fields", [(f"/{k}", "not accepted")
                                                        for k in unexpected[:10]])
    key = flask.request.headers.get("Idempotency-Key", "").strip()
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
                 state: list[str] | None = None, tag: list[str] | None = None) -> Body:
        who = self._who()
        flt = RunFilter(states=_states(state), tags=_tags(tag))
        page = self.runs.list(who, page_size, page_token, flt)
        return {"runs": [shapes.run_summary(r) for r in page.items],
                "next_page_token": page.next_token}

    def RunWorkflow(self, **_ignored: Any) -> Body:  # noqa: N802
        who = self._who()
        return {"run_id": self.runs.submit(who, _submission())}

    def GetRunLog(self, run_id: str) -> Body:  # noqa: N802
        run = self.runs.get(self._who(), run_id)
        return shapes.run_log(run, context.base_url(self.public_url),
                              self.runs.logs_direct(run))

    def GetRunStatus(self, run_id: str) -> Body:  # noqa: N802
        run = self.runs.get(self._who(), run_id)
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
