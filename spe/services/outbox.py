"""Outbox: the second half of the airlock. An approved request is released: each file is
checked against its snapshot, copied to the project's outbox under ``<request id>/``, and
the copy re-hashed; the RO-Crate is written beside them; then, once, APPROVED -> RELEASED
with its ``release.release`` audit event. The requester downloads; reviewers and
operators revoke.

The release is an idempotent step: copying a file again writes the same key with the same
verified bytes, and the move to RELEASED is a compare-and-set guarded by the request's
work claim, written with its audit event in one transaction, so it happens exactly once
however often the step is tried (a nudge after the deciding vote, every reconciler)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spe.domain.airlock import ReleaseRequest, ReleaseState, WorkClaim
from spe.domain.catalog import Catalog
from spe.domain.data_refs import parse_refs
from spe.domain.errors import Conflict, NotFound
from spe.domain.models import JSON, Principal
from spe.domain.ports import ObjectStore, RunRepository
from spe.domain.rocrate import CrateWriter, release_crate
from spe.services.airlock import DOWNLOAD, READ, REVOKE, ReleaseRequests, Zones
from spe.services.streams import Chunks, digest, json_bytes

S = ReleaseState
log = logging.getLogger(__name__)
CRATE = "ro-crate-metadata.json"
APPROVED = frozenset({S.APPROVED})


@dataclass
class Outbox:
    requests: ReleaseRequests
    runs: RunRepository
    catalog: Catalog
    zones: Zones
    crates: CrateWriter

    # -- release -----------------------------------------------------------------------

    def release(self, request_id: str) -> ReleaseRequest | None:
        """APPROVED -> RELEASED: verify each file is still what was submitted, copy it to
        the outbox, re-hash the copy, write the crate, move. A failure leaves the request
        APPROVED with the reason, nothing of it in the outbox, and a retry time. None if
        another worker holds the request or it is not APPROVED."""
        claim = self.requests.claim(request_id, APPROVED)
        if claim is None:
            return None
        req = self.requests.fresh(request_id)
        outbox = self.zones.outbox(req.project)
        released_at = self.requests.clock()
        try:
            self._copy(req, outbox)
            crate = self._crate(req, released_at)
            outbox.put(f"{req.id}/{CRATE}", io.BytesIO(json_bytes(crate)))
        except Exception as exc:  # nothing half-released stays in the outbox
            self._failed(req, claim, outbox, exc)
            return self.requests.fresh(req.id)
        event = self.requests.event(
            "release.release", None, "released", req.id,
            {"files": [{"path": f.path, "sha256": f.sha256} for f in req.files]})
        if not self.requests.releases.finish_release(req.id, claim.token, released_at,
                                                     crate, event):
            self._settle(req.id, outbox)
        return self.requests.fresh(req.id)

    def _copy(self, req: ReleaseRequest, outbox: ObjectStore) -> None:
        quarantine = self.zones.quarantine(req.project)
        for f in req.files:
            source, target = f"{req.run_id}/{f.path}", f"{req.id}/{f.path}"
            if digest(quarantine.get(source)) != (f.size, f.sha256):
                raise Conflict(f"{f.path} changed after the request was submitted")
            outbox.put(target, io.BufferedReader(Chunks(quarantine.get(source))))
            if digest(outbox.get(target)) != (f.size, f.sha256):
                raise Conflict(f"{f.path}: the outbox copy does not match its digest")

    def _failed(self, req: ReleaseRequest, claim: WorkClaim, outbox: ObjectStore,
                exc: Exception) -> None:
        """Record the failure (audited when its reason is new), keep others off until the
        retry time, and take this attempt's copies out of the outbox."""
        log.warning("release of request %s failed: %s", req.id, exc)
        reason = f"release failed: {exc}"[:4000]
        if not self.requests.releases.postpone(req.id, claim.token, self.requests.retry_at(),
                                               reason):
            return  # our claim ran out: another worker has the request now
        if reason != req.reason:
            self.requests.audit("release.release", None, "failed", req.id,
                                {"reason": str(exc)[:2000]})
        self._empty(req, outbox)

    def _settle(self, request_id: str, outbox: ObjectStore) -> None:
        """After a lost claim (it ran out while this attempt copied): leave the outbox as
        the request's state says: the stored crate if released, nothing if revoked."""
        req = self.requests.fresh(request_id)
        if req.state == S.RELEASED and req.crate is not None:
            outbox.put(f"{req.id}/{CRATE}", io.BytesIO(json_bytes(req.crate)))
        elif req.state == S.REVOKED:
            self._empty(req, outbox)

    def _crate(self, req: ReleaseRequest, released_at: datetime) -> dict[str, Any]:
        run = self.runs.get(req.run_id)
        datasets: list[str] = []
        workflow = ("", "", "")
        if run is not None:
            workflow = (run.workflow_id, run.workflow_version, run.bundle_digest)
            entry = next((e for e in self.catalog.entries()
                          if (e.id, e.version) == (run.workflow_id, run.workflow_version)), None)
            if entry is not None:
                refs = parse_refs(entry.params_schema, run.request.workflow_params,
                                  self.requests.gate.policy.datasets)
                datasets = sorted({r.dataset for r in refs})
        votes = self.requests.releases.votes(req.id, req.round)
        return release_crate(
            self.crates, request_id=req.id, run_id=req.run_id, workflow_id=workflow[0],
            workflow_version=workflow[1], bundle_digest=workflow[2], datasets=datasets,
            requester=req.requester_name, project=req.project,
            justification=req.justification,
            files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in req.files],
            findings=req.findings,
            votes=[{"reviewer": v.reviewer_name, "path": v.path, "decision": v.decision.value,
                    "reason": v.reason, "at": v.at.isoformat()} for v in votes],
            decided_at=(req.decided_at or released_at).isoformat(),
            released_at=released_at.isoformat())

    # -- after the release -------------------------------------------------------------

    def crate(self, who: Principal, request_id: str) -> JSON:
        req = self.requests.get(who, request_id, READ)
        if req.crate is None:
            raise Conflict(f"release request {req.id} has not been released")
        return req.crate

    def download(self, who: Principal, request_id: str, path: str) -> Iterator[bytes]:
        req = self.requests.get(who, request_id, DOWNLOAD)
        if req.state != S.RELEASED:
            self.requests.audit("release.download", who, "denied", req.id,
                                {"state": req.state.value})
            raise Conflict(f"release request {req.id} is {req.state.value}: nothing to "
                           "download")
        if path not in {f.path for f in req.files}:
            raise NotFound(f"{path[:200]!r} is not a released file of this request")
        self.requests.audit("release.download", who, "granted", req.id, {"path": path})
        return self.zones.outbox(req.project).get(f"{req.id}/{path}")

    def revoke(self, who: Principal, request_id: str) -> ReleaseRequest:
        """RELEASED -> REVOKED: the files and the crate leave the outbox (the crate stays
        on the request)."""
        req = self.requests.get(who, request_id, REVOKE)
        if not self.requests.move(req.id, S.RELEASED, S.REVOKED, self.requests.event(
                "release.revoke", who, "revoked", req.id, {})):
            raise Conflict(f"release request {req.id} is {req.state.value}: not released")
        self._empty(req, self.zones.outbox(req.project))
        req = self.requests.fresh(req.id)
        req.revoked_at = self.requests.clock()
        self.requests.releases.save(req)
        return req

    def _empty(self, req: ReleaseRequest, outbox: ObjectStore) -> None:
        """Nothing of the request in the outbox (``delete`` is idempotent)."""
        for f in req.files:
            outbox.delete(f"{req.id}/{f.path}")
        outbox.delete(f"{req.id}/{CRATE}")
