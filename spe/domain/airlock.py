"""The airlock: release requests, their literal state table, and the rule that decides a
request once enough independent reviewers have voted on every file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ReleaseState(StrEnum):
    SUBMITTED = "SUBMITTED"
    CHECKING = "CHECKING"
    IN_REVIEW = "IN_REVIEW"
    BLOCKED = "BLOCKED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    RETURNED = "RETURNED"
    WITHDRAWN = "WITHDRAWN"
    RELEASED = "RELEASED"
    REVOKED = "REVOKED"


R = ReleaseState
# a requester's requests that still wait for the service, the reviewers or the requester
OPEN = frozenset({R.SUBMITTED, R.CHECKING, R.IN_REVIEW, R.RETURNED})

TRANSITIONS: dict[ReleaseState, frozenset[ReleaseState]] = {
    R.SUBMITTED: frozenset({R.CHECKING}),
    R.CHECKING: frozenset({R.IN_REVIEW, R.BLOCKED}),
    R.IN_REVIEW: frozenset({R.APPROVED, R.REJECTED, R.RETURNED}),
    R.RETURNED: frozenset({R.SUBMITTED, R.WITHDRAWN}),
    R.APPROVED: frozenset({R.RELEASED}),
    R.RELEASED: frozenset({R.REVOKED}),
    R.BLOCKED: frozenset(),
    R.REJECTED: frozenset(),
    R.WITHDRAWN: frozenset(),
    R.REVOKED: frozenset(),
}

DECIDED = frozenset({R.APPROVED, R.REJECTED, R.RETURNED, R.RELEASED, R.REVOKED,
                     R.WITHDRAWN})

# States in which the service, not a person, owes the next step: the checks (SUBMITTED,
# CHECKING) or the release (APPROVED). A request left in one of them is carried on by the
# reconciler (``ReleaseWork.carry_on``).
CARRIED_ON = frozenset({R.SUBMITTED, R.CHECKING, R.APPROVED})


def can_move(current: ReleaseState, target: ReleaseState) -> bool:
    return target in TRANSITIONS[current]


class Decision(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"


@dataclass(frozen=True)
class RequestedFile:
    """A file as snapshotted at submission: it is released only if still identical."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Vote:
    reviewer_sub: str
    reviewer_name: str
    path: str
    decision: Decision
    reason: str
    at: datetime
    round: int = 1


@dataclass
class ReleaseRequest:
    id: str
    run_id: str
    project: str
    requester_sub: str
    requester_name: str
    justification: str
    state: ReleaseState
    files: list[RequestedFile]
    created_at: datetime
    findings: list[dict[str, Any]] = field(default_factory=list)
    round: int = 1
    reason: str = ""
    decided_at: datetime | None = None
    released_at: datetime | None = None
    revoked_at: datetime | None = None
    crate: dict[str, Any] | None = None


def consolidate(files: list[RequestedFile], votes: list[Vote],
                required: int) -> ReleaseState | None:
    """The decision once ``required`` distinct reviewers have each voted on every file:
    any ``reject`` -> REJECTED, else any ``request_changes`` -> RETURNED, else APPROVED.
    None while votes are missing."""
    paths = {f.path for f in files}
    by_reviewer: dict[str, set[str]] = {}
    for vote in votes:
        by_reviewer.setdefault(vote.reviewer_sub, set()).add(vote.path)
    complete = [r for r, voted in by_reviewer.items() if paths <= voted]
    if len(complete) < required:
        return None
    decisions = {v.decision for v in votes if v.reviewer_sub in complete}
    if Decision.REJECT in decisions:
        return R.REJECTED
    if Decision.REQUEST_CHANGES in decisions:
        return R.RETURNED
    return R.APPROVED


@dataclass(frozen=True)
class WorkClaim:
    """Who is doing the service's step on a request (``token``), and until when the claim
    holds; after ``until`` anyone may take the step over."""

    token: str
    until: datetime


@dataclass(frozen=True)
class ReleaseFilter:
    """Which release requests a listing shows (the repository filters in SQL): the
    caller's own (``own``) in the projects they are a member of now (``member_of``), those
    of ``projects``, or all (``everything``); never the caller's own with ``not_own``;
    only ``state`` when given."""

    sub: str
    own: bool = True
    projects: tuple[str, ...] = ()
    everything: bool = False
    not_own: bool = False
    state: ReleaseState | None = None
    member_of: tuple[str, ...] = ()

    def scope(self) -> str:
        """What a page token of this listing is bound to."""
        return (f"release-requests|{self.sub}|{int(self.own)}|{sorted(self.projects)}|"
                f"{int(self.everything)}|{int(self.not_own)}|{self.state or ''}|"
                f"{sorted(self.member_of)}")


@dataclass(frozen=True)
class ReleaseCursor:
    """A place in the listing (newest first): the last request of a page."""

    created_at: datetime
    id: str

    def text(self) -> str:
        return f"{self.created_at.isoformat()}|{self.id}"

    @classmethod
    def parse(cls, text: str) -> ReleaseCursor:
        at, _, request_id = text.partition("|")
        moment = datetime.fromisoformat(at)  # ValueError for anything we did not write
        if moment.tzinfo is None or not request_id:
            raise ValueError("not a release cursor")
        return cls(moment, request_id)
