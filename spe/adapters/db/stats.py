"""Aggregates for ``/metrics``, computed by the database at scrape time: jobs by state,
histograms of time spans between two timestamps of a job table (bucket counts summed in SQL,
so a scrape reads a few rows whatever the table's size), and the airlock's backlog. What the
database holds is the same whichever process (API replica, worker) answers, and survives
restarts, so these need no aggregation across processes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Float, case, cast, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from spe.adapters.db.tables import ReleaseRequestRow


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per upper bound (``inf`` last), the count and the sum."""

    labels: tuple[str, ...]
    buckets: tuple[tuple[float, int], ...]
    count: int
    total: float


def seconds_between(dialect: str, start: InstrumentedAttribute[datetime | None],
                    end: InstrumentedAttribute[datetime | None]) -> ColumnElement[float]:
    """``end - start`` in seconds, in this database's SQL."""
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * literal(86400.0)
    # date_part gives double precision (EXTRACT gives numeric since PostgreSQL 14: slower)
    return cast(func.date_part("epoch", end - start), Float)


def span_histograms(sessions: sessionmaker[Session],
                    start: InstrumentedAttribute[datetime | None],
                    end: InstrumentedAttribute[datetime | None],
                    by: Sequence[InstrumentedAttribute[str]],
                    bounds: Sequence[float], *,
                    where: Sequence[ColumnElement[bool]] = ()) -> list[Histogram]:
    """One histogram of ``end - start`` per value of the ``by`` columns, over the rows
    where both are set (and ``where`` holds)."""
    with sessions() as s:
        spans = (select(*by, seconds_between(s.get_bind().dialect.name, start, end)
                        .label("span"))
                 .where(start.is_not(None), end.is_not(None), *where).subquery())
        span = spans.c.span  # computed once per row, compared with every bound
        keys = [spans.c[column.key] for column in by]
        sums = [func.sum(case((span <= b, 1), else_=0)) for b in bounds]
        query = select(*keys, *sums, func.count(), func.coalesce(func.sum(span), 0.0)) \
            .group_by(*keys)
        rows = s.execute(query).all()
    found = []
    for row in rows:
        labels = tuple(str(v) for v in row[:len(by)])
        counts = [int(v or 0) for v in row[len(by):len(by) + len(bounds)]]
        count, total = int(row[-2]), float(row[-1] or 0.0)
        buckets = (*zip(bounds, counts, strict=True), (float("inf"), count))
        found.append(Histogram(labels, buckets, count, max(total, 0.0)))
    return found


def state_counts(sessions: sessionmaker[Session], state: InstrumentedAttribute[str],
                 where: Sequence[ColumnElement[bool]] = ()) -> dict[str, int]:
    """Rows by ``state`` (where ``where`` holds)."""
    with sessions() as s:
        query = select(state, func.count()).where(*where).group_by(state)
        return {str(value): int(n) for value, n in s.execute(query)}


@dataclass(frozen=True)
class Backlog:
    state: str
    count: int
    oldest: datetime | None


def release_backlog(sessions: sessionmaker[Session]) -> list[Backlog]:
    """Release requests by state, with the creation time of each state's oldest."""
    row = ReleaseRequestRow
    query = select(row.state, func.count(), func.min(row.created_at)).group_by(row.state)
    with sessions() as s:
        return [Backlog(state, int(n), _utc(oldest)) for state, n, oldest in s.execute(query)]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
