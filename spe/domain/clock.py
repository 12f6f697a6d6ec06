"""The service's clock: aware UTC time. Services take a ``clock`` callable defaulting to
this, so tests can set the time."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
