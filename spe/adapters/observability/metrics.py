"""Prometheus collectors of what the database knows (jobs by state, queue depth, start
latency and duration histograms, the airlock's backlog) and of what one process knows (its
reconciler's last successful pass). The database ones are computed at scrape time
(``spe.adapters.db.stats``): the same numbers from any process, after any restart. Every
label takes values from a closed set (job kinds, states, engines), never an id or a path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from spe.adapters.db.stats import Backlog, Histogram

log = logging.getLogger(__name__)

# submit -> the job starts executing: seconds to hours (a busy cluster's queue)
LATENCY_BOUNDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
# a job's execution: seconds (a failed start) to a day (the site's longest wall time)
DURATION_BOUNDS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0,
                   12 * 3600.0, 24 * 3600.0)


@dataclass(frozen=True)
class JobSource:
    """One kind of job (``run``; TES ``task``): its counts by state, the histogram of
    submit -> start, and the histograms of start -> end by (engine, final state)."""

    kind: str
    states: Sequence[str]
    counts: Callable[[], dict[str, int]]
    latency: Callable[[], list[Histogram]]
    durations: Callable[[], list[Histogram]]
    queued_state: str = "QUEUED"


def _bucket_pairs(hist: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if bound == float("inf") else repr(bound), float(n))
            for bound, n in hist.buckets]


class DatabaseCollector(Collector):
    """Jobs and the airlock, read from the database at each scrape. A database that does
    not answer gives ``spe_database_scrape_ok 0`` instead of failing the scrape."""

    def __init__(self, jobs: Sequence[JobSource], backlog: Callable[[], list[Backlog]],
                 release_states: Sequence[str],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._jobs, self._backlog, self._release_states = jobs, backlog, release_states
        self._now = now

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = [*self._job_metrics(), *self._airlock_metrics()]
        except Exception as exc:  # the database is down: say so, keep the scrape
            log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
            metrics = []
        ok = GaugeMetricFamily("spe_database_scrape_ok", "1 when this scrape could read "
                               "the database, else 0 (the job and airlock metrics are "
                               "then absent)")
        ok.add_metric([], 1.0 if metrics else 0.0)
        yield from metrics
        yield ok

    def _job_metrics(self) -> list[Metric]:
        jobs = GaugeMetricFamily("spe_jobs", "Jobs by kind and state", labels=["kind", "state"])
        queue = GaugeMetricFamily("spe_queue_depth", "Jobs waiting to start (QUEUED)",
                                  labels=["kind"])
        latency = HistogramMetricFamily(
            "spe_job_start_latency_seconds", "Submission to the job's start of execution",
            labels=["kind"])
        duration = HistogramMetricFamily(
            "spe_job_duration_seconds", "Start to end of execution, by engine and final "
            "state", labels=["kind", "engine", "state"])
        for source in self._jobs:
            counts = source.counts()
            for state in sorted({*source.states, *counts}):
                jobs.add_metric([source.kind, state], float(counts.get(state, 0)))
            queue.add_metric([source.kind], float(counts.get(source.queued_state, 0)))
            for hist in source.latency():
                latency.add_metric([source.kind], _bucket_pairs(hist), hist.total)
            for hist in source.durations():
                duration.add_metric([source.kind, *hist.labels], _bucket_pairs(hist),
                                    hist.total)
        return [jobs, queue, latency, duration]

    def _airlock_metrics(self) -> list[Metric]:
        count = GaugeMetricFamily("spe_airlock_requests", "Release requests by state",
                                  labels=["state"])
        age = GaugeMetricFamily("spe_airlock_oldest_request_age_seconds",
                                "Age of the oldest release request in each state",
                                labels=["state"])
        found = {b.state: b for b in self._backlog()}
        now = self._now()
        for state in sorted({*self._release_states, *found}):
            backlog = found.get(state)
            count.add_metric([state], float(backlog.count if backlog else 0))
            oldest = backlog.oldest if backlog else None
            age.add_metric([state], max(0.0, (now - oldest).total_seconds())
                           if oldest else 0.0)
        return [count, age]


class ReconcilerCollector(Collector):
    """This process's reconciler: when its last pass succeeded, and how long ago."""

    def __init__(self, last_success: Callable[[], float | None],
                 clock: Callable[[], float] = time.time) -> None:
        self._last, self._clock = last_success, clock

    def collect(self) -> Iterator[Metric]:
        last = self._last()
        stamp = GaugeMetricFamily("spe_reconciler_last_success_timestamp_seconds",
                                  "Unix time of this process's last successful reconciler "
                                  "pass (0: none yet)")
        stamp.add_metric([], last or 0.0)
        lag = GaugeMetricFamily("spe_reconciler_lag_seconds",
                                "Seconds since this process's last successful reconciler "
                                "pass (since the process started, if none yet)")
        lag.add_metric([], max(0.0, self._clock() - last) if last else _since_start())
        yield stamp
        yield lag


_STARTED = time.time()


def _since_start() -> float:
    return time.time() - _STARTED
