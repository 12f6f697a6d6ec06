"""What a reviewer needs to judge a release request: what produced its files. The run's
workflow (id, version, bundle digest, engine and its options), its parameters and the
datasets they read, the requester's justification, the check findings with their values,
and each file's true type (from its first bytes) and size.

Only the project's reviewers may read it (``release.review``), never the requester, in
any state of the request; every read is audited (``release.context``). A reviewer may not
read the run itself (``GET /runs/{id}`` is 404 to them): this is their view of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spe.domain.airlock import ReleaseRequest
from spe.domain.catalog import Catalog
from spe.domain.data_refs import parse_refs
from spe.domain.errors import DomainError, Forbidden
from spe.domain.file_types import sniff
from spe.domain.models import Principal, Run
from spe.domain.ports import RunRepository
from spe.services.airlock import REVIEW, ReleaseRequests, Zones

HEAD_BYTES = 8192
MAX_SNIFFED_FILES = 200


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass
class ReviewContext:
    requests: ReleaseRequests
    runs: RunRepository
    catalog: Catalog
    zones: Zones

    def context(self, who: Principal, request_id: str) -> dict[str, Any]:
        req = self.requests.get(who, request_id, REVIEW)
        if req.requester_sub == who.sub:
            raise Forbidden("a requester never reviews their own request", rule="independence")
        run = self.runs.get(req.run_id)
        self.requests.audit("release.context", who, "granted", req.id, {"run_id": req.run_id})
        return {
            "request_id": req.id, "state": req.state.value, "project": req.project,
            "requester": req.requester_name, "justification": req.justification,
            "run": self._run(run) if run is not None else None,
            "findings": req.findings,  # with values: reviewers only
            "files": self._files(req),
        }

    def _run(self, run: Run) -> dict[str, Any]:
        return {
            "run_id": run.id, "state": run.state.value, "owner": run.owner_name,
            "workflow_id": run.workflow_id, "workflow_version": run.workflow_version,
            "bundle_digest": run.bundle_digest, "engine": run.engine,
            "engine_options": run.engine_options,
            "workflow_params": run.request.workflow_params,
            "datasets": self._datasets(run), "tags": dict(run.request.tags),
            "created_at": _iso(run.created_at), "start_time": _iso(run.start_time),
            "end_time": _iso(run.end_time), "exit_code": run.exit_code,
        }

    def _datasets(self, run: Run) -> list[dict[str, str]]:
        """The data references of the run's parameters (``x-spe-input``)."""
        entry = next((e for e in self.catalog.entries()
                      if (e.id, e.version) == (run.workflow_id, run.workflow_version)), None)
        if entry is None:
            return []
        try:
            refs = parse_refs(entry.params_schema, run.request.workflow_params,
                              self.requests.gate.policy.datasets)
        except DomainError:  # the policy changed since the run: show what can be read
            return []
        return [{"pointer": r.pointer, "dataset": r.dataset, "path": r.path,
                 "reference": r.raw} for r in refs]

    def _files(self, req: ReleaseRequest) -> list[dict[str, Any]]:
        store = self.zones.quarantine(req.project)
        files = []
        for index, f in enumerate(req.files):
            kind = ""
            if index < MAX_SNIFFED_FILES:
                head = b""
                try:
                    for chunk in store.get(f"{req.run_id}/{f.path}"):
                        head += chunk
                        if len(head) >= HEAD_BYTES:
                            break
                    kind = sniff(head[:HEAD_BYTES])
                except (OSError, DomainError):  # gone from quarantine: say so, not 500
                    kind = "unavailable"
            files.append({"path": f.path, "size": f.size, "sha256": f.sha256, "type": kind})
        return files
