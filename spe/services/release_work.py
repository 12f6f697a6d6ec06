"""The airlock heals itself: every reconciler round calls ``ReleaseWork.carry_on``, which
takes each release request the service still owes a step (``CARRIED_ON``: SUBMITTED or
CHECKING, the checks; APPROVED, the release) and nobody is working on (no live work
claim) one step further. A request left there by a crash, or by a failed attempt once its
retry time has come, is carried on; the steps are idempotent and their final moves
compare-and-sets, so several reconcilers (Celery workers) may run this at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from spe.domain.airlock import CARRIED_ON, ReleaseState
from spe.services.airlock import ReleaseRequests
from spe.services.outbox import Outbox
from spe.services.review import Review

log = logging.getLogger(__name__)


@dataclass
class ReleaseWork:
    requests: ReleaseRequests
    review: Review
    outbox: Outbox
    batch: int = 50  # requests per round, oldest first; the rest wait for the next round

    def carry_on(self) -> list[str]:
        """One round; the ids of the requests it tried. A request whose step raises is
        logged and left for a later round; the others continue."""
        waiting = self.requests.releases.waiting(CARRIED_ON, self.requests.clock(),
                                                 self.batch)
        for request_id in waiting:
            try:
                self.step(request_id)
            except Exception:  # keep carrying on the others
                log.exception("carrying on release request %s failed", request_id)
        return waiting

    def step(self, request_id: str) -> None:
        """The next step of one request: its checks, or its release."""
        req = self.requests.releases.get(request_id)
        if req is None:
            return
        if req.state == ReleaseState.APPROVED:
            self.outbox.release(request_id)
        elif req.state in (ReleaseState.SUBMITTED, ReleaseState.CHECKING):
            self.review.resume_checks(request_id)
