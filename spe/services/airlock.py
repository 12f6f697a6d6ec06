"""The airlock: reviewed egress. A run's owner asks for files of its quarantine to leave;
automatic checks run; independent reviewers (the project's reviewers, never the
requester) vote per file, blind until enough have voted; an approved request is copied to
the project's outbox, re-hashed, described by a Five Safes RO-Crate, and downloadable by
the requester only. Every step is audited."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from spe.domain import airlock_checks as checks
from spe.domain.airlock import (
    DECIDED,
    Decision,
    ReleaseRequest,
    ReleaseState,
    RequestedFile,
    Vote,
    can_move,
    consolidate,
)
from spe.domain.attachments import check_attachment_names
from spe.domain.catalog import Catalog
from spe.domain.clock import utc_now
from spe.domain.data_refs import parse_refs
from spe.domain.errors import Conflict, DomainError, Forbidden, InvalidRequest, NotFound
from spe.domain.models import AuditEvent, Principal, Run
from spe.domain.permissions import Resource, allowed, permission
from spe.domain.ports import AuditLog, ObjectStore, ReleaseRepository, RunRepository
from spe.domain.rocrate import release_crate
from spe.domain.states import RunState
from spe.services.access import Gate
from spe.services.streams import Chunks, content_type, digest, json_bytes

S = ReleaseState
log = logging.getLogger(__name__)
READ = permission("release.read")
REVIEW = permission("release.review")
PREVIEW = permission("release.preview")
DOWNLOAD = permission("release.download")
REVOKE = permission("release.revoke")
REQUEST = permission("release.request")
HEAD_BYTES = 8192
CRATE = "ro-crate-metadata.json"


@dataclass
class Airlock:
    releases: ReleaseRepository
    runs: RunRepository
    gate: Gate
    catalog: Catalog
    stores: Callable[[str], ObjectStore]
    quarantine_location: Callable[[str], str]
    outbox_location: Callable[[str], str]
    audit: AuditLog
    preview_max_bytes: int = 5 * 2**20
    clock: Callable[[], datetime] = utc_now
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)

    # -- reading -----------------------------------------------------------------------

    def _resource(self, req: ReleaseRequest) -> Resource:
        return Resource(project=req.project, owner_sub=req.requester_sub)

    def get(self, who: Principal, request_id: str, perm: str = READ) -> ReleaseRequest:
        """The request if ``who`` holds ``perm``; 404 if they may not even see it."""
        req = self.releases.get(request_id)
        access = self.gate.access(who)
        if req is None or not allowed(access, READ, self._resource(req)):
            raise NotFound(f"release request {request_id[:64]!r} not found")
        if not allowed(access, permission(perm), self._resource(req)):
            self._audit(f"{perm}", who, "denied", req.id, {"reason": "not allowed"})
            raise Forbidden(f"{perm} is not allowed on release request {req.id}", rule=perm)
        return req

    def requests_for(self, who: Principal, role: str = "",
                     state: str = "") -> list[ReleaseRequest]:
        access = self.gate.access(who)
        reviewing = tuple(p for p in access.projects if "reviewer" in access.roles_in(p))
        found = self.releases.visible(who.sub, reviewing if role != "requester" else (),
                                      access.is_operator and not role)
        if role == "reviewer":
            found = [r for r in found if r.project in reviewing and r.requester_sub != who.sub]
        elif role == "requester":
            found = [r for r in found if r.requester_sub == who.sub]
        return [r for r in found if not state or r.state.value == state]

    def votes_for(self, who: Principal, req: ReleaseRequest) -> list[Vote]:
        """Blind review: before the decision a caller sees only their own votes."""
        votes = self.releases.votes(req.id, req.round)
        return votes if req.state in DECIDED else [v for v in votes if v.reviewer_sub == who.sub]

    def settings(self, project: str) -> checks.AirlockSettings:
        proj = self.gate.policy.project(project)
        return checks.AirlockSettings.from_policy(dict(proj.airlock) if proj else {})

    def can_review(self, who: Principal, req: ReleaseRequest) -> bool:
        return (req.state == S.IN_REVIEW and req.requester_sub != who.sub
                and allowed(self.gate.access(who), REVIEW, self._resource(req)))

    # -- submitting --------------------------------------------------------------------

    def create(self, who: Principal, run_id: str, paths: list[str],
               justification: str) -> ReleaseRequest:
        run = self.gate.check_run(who, self.runs.get(run_id), REQUEST, run_id)
        if run.state != RunState.COMPLETE or run.purged_at is not None:
            raise Conflict(f"run {run.id} is {run.state.value}"
                           f"{' and purged' if run.purged_at else ''}: only the outputs of "
                           "a completed, unpurged run can be released")
        files = self._snapshot(run, paths)
        req = ReleaseRequest(id=self.new_id(), run_id=run.id, project=run.project,
                             requester_sub=who.sub, requester_name=who.username,
                             justification=justification, state=S.SUBMITTED, files=files,
                             created_at=self.clock())
        self.releases.add(req, AuditEvent(
            action="release.submit", actor=who.sub, outcome="submitted", target=req.id,
            at=self.clock(), details={"run": run.id, "files": [f.path for f in files]}))
        return self._check(req)

    def _snapshot(self, run: Run, paths: list[str]) -> list[RequestedFile]:
        """Each path must be an output of the run; its bytes are hashed now."""
        try:
            check_attachment_names(paths)
        except InvalidRequest as exc:
            raise InvalidRequest("the file list is not safe", [
                (p.replace("/workflow_attachment", "/files"), m) for p, m in exc.errors]) from exc
        outputs = {o.path: o for o in run.outputs}
        unknown = [p for p in paths if p not in outputs]
        if unknown:
            raise InvalidRequest("only outputs of the run can be released",
                                 [(f"/files/{paths.index(p)}", f"{p[:200]!r} is not an "
                                   "output of the run") for p in unknown])
        store = self.stores(self.quarantine_location(run.project))
        files = []
        for path in paths:
            size, sha = digest(store.get(f"{run.id}/{path}"))
            files.append(RequestedFile(path=path, size=size, sha256=sha))
        return files

    def _check(self, req: ReleaseRequest) -> ReleaseRequest:
        """SUBMITTED -> CHECKING -> IN_REVIEW | BLOCKED."""
        self._move(req.id, S.SUBMITTED, S.CHECKING)
        store = self.stores(self.quarantine_location(req.project))
        candidates = [self._candidate(store, req.run_id, f) for f in req.files]
        findings = checks.run_checks(candidates, self.settings(req.project))
        hard = checks.blocking(findings)
        req.findings = [asdict(f) for f in findings]
        req.reason = "; ".join(f"{f.path or 'request'}: {f.message}" for f in hard)[:4000]
        self.releases.save(req)
        target = S.BLOCKED if hard else S.IN_REVIEW
        self._move(req.id, S.CHECKING, target)
        self._audit("release.checks", None, target.value.lower(), req.id,
                    {"hard_failures": len(hard)})
        return self._fresh(req.id)

    @staticmethod
    def _candidate(store: ObjectStore, run_id: str, f: RequestedFile) -> checks.CandidateFile:
        key = f"{run_id}/{f.path}"
        head = b""
        for chunk in store.get(key):
            head += chunk
            if len(head) >= HEAD_BYTES:
                break
        lower = f.path.lower()
        delimiter = "\t" if lower.endswith(".tsv") else ","

        def rows() -> Iterator[list[str]]:
            text = io.TextIOWrapper(io.BufferedReader(Chunks(store.get(key))), encoding="utf-8",
                                    errors="replace", newline="")
            yield from csv.reader(text, delimiter=delimiter)

        is_table = lower.endswith((".csv", ".tsv"))
        return checks.CandidateFile(path=f.path, size=f.size, head=head[:HEAD_BYTES],
                                    text_rows=rows if is_table else None)

    def _fresh(self, request_id: str) -> ReleaseRequest:
        req = self.releases.get(request_id)
        if req is None:
            raise NotFound(f"release request {request_id} vanished")
        return req

    # -- review ------------------------------------------------------------------------

    def vote(self, who: Principal, request_id: str, path: str, decision: str,
             reason: str) -> ReleaseRequest:
        req = self.get(who, request_id)
        if req.requester_sub == who.sub:
            self._audit("release.vote", who, "denied", req.id, {"reason": "self-approval"})
            raise Forbidden("a requester never reviews their own request", rule="independence")
        req = self.get(who, request_id, REVIEW)
        if req.state != S.IN_REVIEW:
            self._audit("release.vote", who, "denied", req.id, {"reason": "decided"})
            raise Conflict(f"release request {req.id} is {req.state.value}: no more votes")
        if path not in {f.path for f in req.files}:
            raise InvalidRequest("not a file of this request", [("/path", path[:200])])
        try:
            self.releases.add_vote(req.id, Vote(
                reviewer_sub=who.sub, reviewer_name=who.username, path=path,
                decision=Decision(decision), reason=reason.strip(), at=self.clock(),
                round=req.round))
        except DomainError:
            self._audit("release.vote", who, "denied", req.id, {"reason": "second vote"})
            raise
        self._audit("release.vote", who, "recorded", req.id, {"path": path,
                                                               "round": req.round})
        return self._decide(req)

    def _decide(self, req: ReleaseRequest) -> ReleaseRequest:
        required = self.settings(req.project).required_approvals
        outcome = consolidate(req.files, self.releases.votes(req.id, req.round), required)
        if outcome is None:
            return req
        if not self._move(req.id, S.IN_REVIEW, outcome):
            return self._fresh(req.id)  # another vote decided it meanwhile
        req = self._fresh(req.id)
        req.decided_at = self.clock()
        self.releases.save(req)
        self._audit("release.decide", None, outcome.value.lower(), req.id, {})
        if outcome == S.APPROVED:
            try:
                return self.release(req.id)
            except Exception:  # recorded on the request and audited; it stays APPROVED
                log.exception("release of request %s failed", req.id)
        return self._fresh(req.id)

    def _move(self, request_id: str, current: ReleaseState, target: ReleaseState) -> bool:
        """Compare-and-set along the literal state table (a move it lacks is a bug)."""
        if not can_move(current, target):
            raise RuntimeError(f"release requests never move {current} -> {target}")
        return self.releases.transition(request_id, frozenset({current}), target)

    def resubmit(self, who: Principal, request_id: str) -> ReleaseRequest:
        req = self._own(who, request_id, S.RETURNED)
        run = self.runs.get(req.run_id)
        if run is None:
            raise Conflict("the run of this request is gone")
        req.files = self._snapshot(run, [f.path for f in req.files])
        req.round, req.reason, req.decided_at = req.round + 1, "", None
        self.releases.save(req)
        self._move(req.id, S.RETURNED, S.SUBMITTED)
        self._audit("release.resubmit", who, "submitted", req.id, {"round": req.round})
        return self._check(req)

    def withdraw(self, who: Principal, request_id: str) -> ReleaseRequest:
        req = self._own(who, request_id, S.RETURNED)
        self._move(req.id, S.RETURNED, S.WITHDRAWN)
        self._audit("release.withdraw", who, "withdrawn", req.id, {})
        return self._fresh(req.id)

    def _own(self, who: Principal, request_id: str, state: ReleaseState) -> ReleaseRequest:
        req = self.get(who, request_id)
        if req.requester_sub != who.sub:
            raise Forbidden("only the requester may do this", rule="requester")
        if req.state != state:
            raise Conflict(f"release request {req.id} is {req.state.value}")
        return req

    # -- release -----------------------------------------------------------------------

    def release(self, request_id: str) -> ReleaseRequest:
        """APPROVED -> RELEASED: verify each file is still what was submitted, copy it to
        the outbox, re-hash the copy; any mismatch fails loudly and releases nothing."""
        req = self._fresh(request_id)
        quarantine = self.stores(self.quarantine_location(req.project))
        outbox = self.stores(self.outbox_location(req.project))
        try:
            for f in req.files:
                source = f"{req.run_id}/{f.path}"
                if digest(quarantine.get(source)) != (f.size, f.sha256):
                    raise Conflict(f"{f.path} changed after the request was submitted")
                outbox.put(f"{req.id}/{f.path}", io.BufferedReader(Chunks(quarantine.get(source))))
                if digest(outbox.get(f"{req.id}/{f.path}")) != (f.size, f.sha256):
                    raise Conflict(f"{f.path}: the outbox copy does not match its digest")
        except Exception as exc:  # nothing half-released stays in the outbox
            for f in req.files:
                outbox.delete(f"{req.id}/{f.path}")
            req.reason = f"release failed: {exc}"
            self.releases.save(req)
            self._audit("release.release", None, "failed", req.id, {"reason": str(exc)})
            raise
        req.released_at = self.clock()
        req.crate = self._crate(req)
        outbox.put(f"{req.id}/{CRATE}", io.BytesIO(json_bytes(req.crate)))
        self.releases.save(req)
        self._move(req.id, S.APPROVED, S.RELEASED)
        self._audit("release.release", None, "released", req.id,
                    {"files": [{"path": f.path, "sha256": f.sha256} for f in req.files]})
        return self._fresh(req.id)

    def _crate(self, req: ReleaseRequest) -> dict[str, Any]:
        run = self.runs.get(req.run_id)
        datasets: list[str] = []
        workflow = ("", "", "")
        if run is not None:
            workflow = (run.workflow_id, run.workflow_version, run.bundle_digest)
            entry = next((e for e in self.catalog.entries()
                          if (e.id, e.version) == (run.workflow_id, run.workflow_version)), None)
            if entry is not None:
                refs = parse_refs(entry.params_schema, run.request.workflow_params,
                                  self.gate.policy.datasets)
                datasets = sorted({r.dataset for r in refs})
        votes = self.releases.votes(req.id, req.round)
        return release_crate(
            request_id=req.id, run_id=req.run_id, workflow_id=workflow[0],
            workflow_version=workflow[1], bundle_digest=workflow[2], datasets=datasets,
            requester=req.requester_name, project=req.project,
            justification=req.justification,
            files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in req.files],
            findings=req.findings,
            votes=[{"reviewer": v.reviewer_name, "path": v.path, "decision": v.decision.value,
                    "reason": v.reason, "at": v.at.isoformat()} for v in votes],
            decided_at=(req.decided_at or self.clock()).isoformat(),
            released_at=(req.released_at or self.clock()).isoformat())

    def download(self, who: Principal, request_id: str, path: str) -> Iterator[bytes]:
        req = self.get(who, request_id, DOWNLOAD)
        if req.state != S.RELEASED:
            self._audit("release.download", who, "denied", req.id, {"state": req.state.value})
            raise Conflict(f"release request {req.id} is {req.state.value}: nothing to "
                           "download")
        if path not in {f.path for f in req.files}:
            raise NotFound(f"{path[:200]!r} is not a released file of this request")
        self._audit("release.download", who, "granted", req.id, {"path": path})
        return self.stores(self.outbox_location(req.project)).get(f"{req.id}/{path}")

    def preview(self, who: Principal, request_id: str, path: str) -> tuple[bytes, str]:
        """The first ``preview_max_bytes`` of a quarantined file, for its reviewers."""
        req = self.get(who, request_id, PREVIEW)
        if req.requester_sub == who.sub:
            raise Forbidden("a requester never reviews their own request", rule="independence")
        if req.state != S.IN_REVIEW:
            raise Conflict(f"release request {req.id} is {req.state.value}")
        if path not in {f.path for f in req.files}:
            raise NotFound(f"{path[:200]!r} is not a file of this request")
        data = b""
        for chunk in self.stores(self.quarantine_location(req.project)).get(
                f"{req.run_id}/{path}"):
            data += chunk
            if len(data) >= self.preview_max_bytes:
                break
        self._audit("release.preview", who, "granted", req.id, {"path": path})
        return data[:self.preview_max_bytes], content_type(path, data)

    def revoke(self, who: Principal, request_id: str) -> ReleaseRequest:
        req = self.get(who, request_id, REVOKE)
        if not self._move(req.id, S.RELEASED, S.REVOKED):
            raise Conflict(f"release request {req.id} is {req.state.value}: not released")
        outbox = self.stores(self.outbox_location(req.project))
        for f in req.files:
            outbox.delete(f"{req.id}/{f.path}")
        outbox.delete(f"{req.id}/{CRATE}")
        req = self._fresh(req.id)
        req.revoked_at = self.clock()
        self.releases.save(req)
        self._audit("release.revoke", who, "revoked", req.id, {})
        return req

    def _audit(self, action: str, who: Principal | None, outcome: str, target: str,
               details: dict[str, Any]) -> None:
        self.audit.append(AuditEvent(action=action, actor=who.sub if who else "system",
                                     outcome=outcome, target=target, details=details,
                                     at=self.clock()))
