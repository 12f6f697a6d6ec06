"""Controllers of our extensions under /spe/v1 (spe/openapi/spe.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import flask

from spe.api import context, shapes
from spe.domain.catalog import Catalog
from spe.domain.errors import NotFound
from spe.services.audit import AuditQuery, AuditSearch
from spe.services.runs import RunService
from spe.services.service_info import offered

Body = dict[str, Any]


@dataclass
class SpeApi:
    runs: RunService
    catalog: Catalog
    log_max_bytes: int
    auth_instructions: str = ""
    audit_query: AuditQuery | None = None

    def get_auth_instructions(self) -> flask.Response:
        return flask.Response(self.auth_instructions, status=200,
                              content_type="text/plain; charset=utf-8")

    def get_me(self) -> Body:
        access = self.runs.gate.access(context.principal())
        titles = {p.id: p.title for p in self.runs.gate.policy.projects.values()}
        return shapes.me(access, titles)

    def list_datasets(self) -> Body:
        access = self.runs.gate.access(context.principal())
        policy = self.runs.gate.policy
        datasets = []
        for ds_id in access.datasets:
            ds = policy.datasets[ds_id]
            granted = [f"project:{p}" for p in ds.projects if p in access.projects]
            if ds.visa is not None and not granted:
                granted = ["visa:ControlledAccessGrants"]
            datasets.append({"id": ds.id, "description": ds.description,
                             "kind": "s3" if ds.location.startswith("s3://") else "filesystem",
                             "granted_by": granted})
        return {"datasets": datasets}

    def purge_run(self, run_id: str) -> Body:
        return {"run_id": run_id, **self.runs.purge(context.principal(), run_id)}

    def list_workflows(self) -> Body:
        """The entries a submission may name: those whose engine is installed."""
        context.principal()
        return {"workflows": [shapes.workflow(e) for e in
                              offered(self.catalog, self.runs.engine_versions())]}

    def get_workflow(self, workflow_ref: str) -> Body:
        context.principal()
        entries = offered(self.catalog, self.runs.engine_versions())
        entry = (self.catalog.newest(workflow_ref) if "@" not in workflow_ref
                 else next((e for e in entries if e.ref == workflow_ref), None))
        if entry is None or entry not in entries:
            raise NotFound(f"workflow {workflow_ref[:100]!r} is not offered here (not in "
                           "the catalog, or its engine is not installed)")
        return shapes.workflow(entry)

    def get_run_log_stream(self, run_id: str, stream: str,
                           max_bytes: int | None = None) -> flask.Response:
        who = context.principal()
        limit = min(max_bytes or self.log_max_bytes, self.log_max_bytes)
        data = self.runs.log_tail(who, run_id, stream, limit)
        return flask.Response(
            data, status=200, content_type="text/plain; charset=utf-8",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                     "Content-Disposition": "inline"},
        )

    def list_run_outputs(self, run_id: str) -> Body:
        run = self.runs.get(context.principal(), run_id, kind="")  # a run or a task
        return {"run_id": run.id, "outputs": [
            {"path": o.path, "size": o.size, "sha256": o.sha256} for o in run.outputs]}

    def get_run_progress(self, run_id: str) -> Body:
        progress = self.runs.progress(context.principal(), run_id)
        return {"run_id": run_id, "planned_jobs": progress.planned,
                "done_jobs": progress.done}

    def list_audit_events(self, *, action: str = "", actor: str = "", target: str = "",
                          since: str | None = None, until: str | None = None,
                          page_size: int = 100, page_token: str = "") -> Body:
        if self.audit_query is None:
            raise NotFound("the audit log is not served here")
        search = AuditSearch(action=action, actor=actor, target=target, since=since,
                             until=until)
        page = self.audit_query.list(context.principal(), search, page_size, page_token)
        return {"events": [
            {"id": e.id, "at": e.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
             "action": e.action, "actor": e.actor, "outcome": e.outcome, "target": e.target,
             "details": e.details, "hash": e.hash} for e in page.items],
            "next_page_token": page.next_token}
