"""The release-request state table is exactly the one of the airlock issue, and the
decision rule."""

from __future__ import annotations

from datetime import UTC, datetime

from spe.domain.airlock import (
    TRANSITIONS,
    Decision,
    ReleaseState,
    RequestedFile,
    Vote,
    consolidate,
)

R = ReleaseState
FILES = [RequestedFile("a.csv", 1, "0" * 64), RequestedFile("b.png", 1, "1" * 64)]


def test_the_state_table_is_literal() -> None:
    edges = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert edges == {
        ("SUBMITTED", "CHECKING"), ("CHECKING", "IN_REVIEW"), ("CHECKING", "BLOCKED"),
        ("IN_REVIEW", "APPROVED"), ("IN_REVIEW", "REJECTED"), ("IN_REVIEW", "RETURNED"),
        ("RETURNED", "SUBMITTED"), ("RETURNED", "WITHDRAWN"), ("APPROVED", "RELEASED"),
        ("RELEASED", "REVOKED")}


def votes(*spec: tuple[str, str, Decision]) -> list[Vote]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [Vote(r, r, p, d, "why", at) for r, p, d in spec]


def test_no_decision_until_enough_reviewers_voted_on_every_file() -> None:
    assert consolidate(FILES, votes(("r1", "a.csv", Decision.APPROVE),
                                    ("r1", "b.png", Decision.APPROVE),
                                    ("r2", "a.csv", Decision.APPROVE)), 2) is None


def test_all_approvals_approve_any_reject_rejects_changes_return() -> None:
    full = [("r1", "a.csv"), ("r1", "b.png"), ("r2", "a.csv"), ("r2", "b.png")]
    approve = votes(*[(r, p, Decision.APPROVE) for r, p in full])
    assert consolidate(FILES, approve, 2) == R.APPROVED
    changes = votes(*[(r, p, Decision.REQUEST_CHANGES if p == "b.png" and r == "r2"
                       else Decision.APPROVE) for r, p in full])
    assert consolidate(FILES, changes, 2) == R.RETURNED
    reject = votes(*[(r, p, Decision.REJECT if r == "r1" and p == "a.csv"
                      else Decision.REQUEST_CHANGES) for r, p in full])
    assert consolidate(FILES, reject, 2) == R.REJECTED
