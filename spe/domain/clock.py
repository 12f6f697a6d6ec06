"""The one wall clock of the services: aware UTC. Services take a ``clock`` callable that
defaults to ``utc_now``, so tests can pass their own."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)
