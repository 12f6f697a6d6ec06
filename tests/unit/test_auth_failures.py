"""Failed authentications: aggregated in the audit per client, reason and minute, and
rate-limited per client address."""

from __future__ import annotations

import pytest

from spe.api.security import RATE_LIMITED, Authenticator
from spe.domain.errors import TooManyRequests, Unauthenticated
from spe.domain.models import AuditEvent, Principal


class Verifier:
    def verify(self, token: str) -> Principal:
        raise Unauthenticated("the token does not verify")


class Audit:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        self.events.append(event)


def test_repeated_failures_are_counted_in_one_event_per_minute() -> None:
    now = [1000.0]
    audit = Audit()
    auth = Authenticator(Verifier(), audit, failures_per_minute=5,  # type: ignore[arg-type]
                         clock=lambda: now[0])
    outcomes = []
    for _ in range(8):
        try:
            auth("Bearer nope", "10.0.0.9")
        except (Unauthenticated, TooManyRequests) as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes == ["Unauthenticated"] * 5 + ["TooManyRequests"] * 3
    assert [e.details["count"] for e in audit.events] == [1, 1]  # first of each reason
    now[0] += 61
    with pytest.raises(Unauthenticated):
        auth("Bearer nope", "10.0.0.9")  # a new minute: verified again
    counts = {(e.details["reason"], e.details["count"]) for e in audit.events}
    assert ("the token does not verify", 4) in counts  # the minute's repeats, in one row
    assert (RATE_LIMITED, 2) in counts
    assert len(audit.events) == 5
    auth.flush()
    assert len(audit.events) == 5  # nothing left over: the new minute had one failure
