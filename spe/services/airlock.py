"""The airlock: reviewed egress. A run's owner asks for files of its quarantine to leave;
automatic checks run; independent reviewers (the project's reviewers, never the
requester) vote per file, blind until enough have voted; an approved request is copied to
the project's outbox, re-hashed, described by a Five Safes RO-Crate, and downloadable by
the requester only. Every step is audited.

Two services share what is here: ``Review`` (``spe.services.review``: request, checks,
votes, decision) and ``Outbox`` (``spe.services.outbox``: release, download, revoke);
``ReleaseWork`` (``spe.services.release_work``) carries on the steps the service owes.
This module holds what both use: reading a request with a permission, state moves, work
claims, audit events, and the project's zones."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from spe.domain import airlock_checks as checks
from spe.domain.airlock import ReleaseRequest, ReleaseState, WorkClaim, can_move
from spe.domain.clock import utc_now
from spe.domain.errors import Forbidden, NotFound
from spe.domain.models import AuditEvent, Principal
from spe.domain.permissions import Resource, allowed, permission
from spe.domain.ports import AuditLog, ObjectStore, ReleaseRepository
from spe.services.access import Gate

READ = permission("release.read")
REVIEW = permission("release.review")
PREVIEW = permission("release.preview")
DOWNLOAD = permission("release.download")
REVOKE = permission("release.revoke")
REQUEST = permission("release.request")


@dataclass
class Zones:
    """A project's quarantine and outbox stores."""

    stores: Callable[[str], ObjectStore]
    quarantine_location: Callable[[str], str]
    outbox_location: Callable[[str], str]

    def quarantine(self, project: str) -> ObjectStore:
        return self.stores(self.quarantine_location(project))

    def outbox(self, project: str) -> ObjectStore:
        return self.stores(self.outbox_location(project))


@dataclass
class ReleaseRequests:
    """Release requests as the airlock services see them.

    ``claim_seconds``: how long one worker may take for a step (checks, release) before
    another takes it over; ``retry_seconds``: how long a failed step waits before it is
    tried again."""

    releases: ReleaseRepository
    gate: Gate
    audit_log: AuditLog
    clock: Callable[[], datetime] = utc_now
    claim_seconds: float = 900.0
    retry_seconds: float = 60.0

    def resource(self, req: ReleaseRequest) -> Resource:
        return Resource(project=req.project, owner_sub=req.requester_sub)

    def get(self, who: Principal, request_id: str, perm: str = READ) -> ReleaseRequest:
        """The request if ``who`` holds ``perm``; 404 if they may not even see it."""
        req = self.releases.get(request_id)
        access = self.gate.access(who)
        if req is None or not allowed(access, READ, self.resource(req)):
            raise NotFound(f"release request {request_id[:64]!r} not found")
        if not allowed(access, permission(perm), self.resource(req)):
            self.audit(perm, who, "denied", req.id, {"reason": "not allowed"})
            raise Forbidden(f"{perm} is not allowed on release request {req.id}", rule=perm)
        return req

    def fresh(self, request_id: str) -> ReleaseRequest:
        req = self.releases.get(request_id)
        if req is None:
            raise NotFound(f"release request {request_id} vanished")
        return req

    def settings(self, project: str) -> checks.AirlockSettings:
        proj = self.gate.policy.project(project)
        return checks.AirlockSettings.from_policy(dict(proj.airlock) if proj else {})

    # -- state and claims ----------------------------------------------------------------

    def move(self, request_id: str, current: ReleaseState, target: ReleaseState,
             event: AuditEvent | None = None) -> bool:
        """Compare-and-set along the literal state table (a move it lacks is a bug), with
        ``event`` written in the same transaction if the move happened."""
        if not can_move(current, target):
            raise RuntimeError(f"release requests never move {current} -> {target}")
        return self.releases.transition(request_id, frozenset({current}), target, event)

    def new_claim(self) -> WorkClaim:
        until = self.clock() + timedelta(seconds=self.claim_seconds)
        return WorkClaim(token=uuid.uuid4().hex, until=until)

    def claim(self, request_id: str, states: frozenset[ReleaseState]) -> WorkClaim | None:
        """The work claim of a request in ``states``, or None if someone holds it (or the
        request is in another state)."""
        claim = self.new_claim()
        taken = self.releases.claim(request_id, states, claim, self.clock())
        return claim if taken else None

    def retry_at(self) -> datetime:
        return self.clock() + timedelta(seconds=self.retry_seconds)

    @contextmanager
    def holding(self, request_id: str, claim: WorkClaim, failure: str) -> Iterator[None]:
        """Run a step under ``claim``: dropped when the step is done; on an error the
        request gets ``failure: error`` as its reason and waits ``retry_seconds``."""
        try:
            yield
        except Exception as exc:
            self.releases.postpone(request_id, claim.token, self.retry_at(),
                                   f"{failure}: {exc}"[:4000])
            raise
        self.releases.unclaim(request_id, claim.token)

    # -- audit -----------------------------------------------------------------------------

    def event(self, action: str, who: Principal | None, outcome: str, target: str,
              details: dict[str, Any]) -> AuditEvent:
        return AuditEvent(action=action, actor=who.sub if who else "system",
                          outcome=outcome, target=target, details=details, at=self.clock())

    def audit(self, action: str, who: Principal | None, outcome: str, target: str,
              details: dict[str, Any]) -> None:
        self.audit_log.append(self.event(action, who, outcome, target, details))
