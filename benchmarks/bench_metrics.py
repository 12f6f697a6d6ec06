"""What one `/metrics` scrape costs the database, with 10k and 100k stored runs.

The database is migrated (`upgrade(url)`), then runs are bulk-inserted with SQLAlchemy core
(60 % COMPLETE, the rest spread over the other states; start and end times drawn so the
histograms have samples in many buckets) and a few hundred release requests. Each sample
builds the scrape body exactly as `GET /metrics` does (`generate_latest` over the
`DatabaseCollector` the service registers: state counts, two histograms summed in SQL, the
airlock backlog); the HTTP edge is not included.

    .venv/bin/python benchmarks/bench_metrics.py                 # SQLite, 10k and 100k
    .venv/bin/python benchmarks/bench_metrics.py --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import percentile, print_machine, print_table, scratch_dir
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import delete, insert

from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.stats import release_backlog, span_histograms
from spe.adapters.db.tables import ReleaseRequestRow, RunRow
from spe.adapters.observability.metrics import (
    DURATION_BOUNDS,
    LATENCY_BOUNDS,
    DatabaseCollector,
    JobSource,
)
from spe.domain.airlock import ReleaseState
from spe.domain.models import Visibility
from spe.domain.states import RunState

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
STATES = ["COMPLETE", "EXECUTOR_ERROR", "CANCELED", "SYSTEM_ERROR", "RUNNING", "QUEUED"]
WEIGHTS = [60, 15, 10, 5, 5, 5]
CHUNK = 5000


def run_row(rng: random.Random, n: int) -> dict[str, Any]:
    state = rng.choices(STATES, WEIGHTS)[0]
    created = EPOCH + timedelta(seconds=n)
    start = created + timedelta(seconds=rng.expovariate(1 / 30)) \
        if state != "QUEUED" else None
    end = start + timedelta(seconds=rng.expovariate(1 / 600)) \
        if start is not None and state not in ("RUNNING",) else None
    return {"id": uuid.uuid4().hex, "owner_sub": f"dev|u{n % 50}", "owner_name": "u",
            "project": "demo", "state": state, "workflow_id": "sleepy",
            "workflow_version": "1.0.0", "bundle_digest": "sha256:" + "ab" * 32,
            "engine": rng.choice(["snakemake", "nextflow"]), "request": {},
            "engine_options": {}, "created_at": created, "start_time": start,
            "end_time": end, "cmd": [], "system_logs": [], "outputs": []}


def populate(url: str, runs: int, releases: int, seed: int) -> None:
    rng = random.Random(seed)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(RunRow))
        conn.execute(delete(ReleaseRequestRow))
        for first in range(0, runs, CHUNK):
            conn.execute(insert(RunRow), [run_row(rng, n)
                                          for n in range(first, min(runs, first + CHUNK))])
        conn.execute(insert(ReleaseRequestRow), [{
            "id": uuid.uuid4().hex, "run_id": "x", "project": "demo", "requester_sub": "u",
            "requester_name": "u", "justification": "j",
            "state": rng.choice(list(ReleaseState)).value, "files": [],
            "created_at": EPOCH + timedelta(minutes=n)} for n in range(releases)])
    engine.dispose()


def registry_for(url: str) -> CollectorRegistry:
    sessions = make_sessions(make_engine(url))
    repo = SqlRunRepository(sessions)
    source = JobSource(
        "run", [s.value for s in RunState],
        lambda: repo.state_counts(Visibility("", everything=True)),
        lambda: span_histograms(sessions, RunRow.created_at, RunRow.start_time, [],
                                LATENCY_BOUNDS),
        lambda: span_histograms(sessions, RunRow.start_time, RunRow.end_time,
                                [RunRow.engine, RunRow.state], DURATION_BOUNDS))
    registry = CollectorRegistry()
    registry.register(DatabaseCollector([source], lambda: release_backlog(sessions),
                                        [s.value for s in ReleaseState]))
    return registry


def measure(url: str, samples: int) -> list[float]:
    registry = registry_for(url)
    generate_latest(registry)  # warm: connections, statement cache
    took = []
    for _ in range(samples):
        began = time.perf_counter()
        body = generate_latest(registry)
        took.append(time.perf_counter() - began)
    if b"spe_database_scrape_ok 1.0" not in body:
        raise SystemExit("the scrape could not read the database")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="stored runs per case")
    parser.add_argument("--releases", type=int, default=500)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--database-url", default="", help="empty: a scratch SQLite file")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print_machine("bench_metrics: the database side of one /metrics scrape")
    rows = []
    with scratch_dir("spe-bench-metrics") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'spe.db'}"
        upgrade(url)
        for size in (int(s) for s in args.sizes.split(",")):
            populate(url, size, args.releases, args.seed)
            took = measure(url, args.samples)
            rows.append([url.split(":", 1)[0], size, args.samples,
                         f"{percentile(took, 50) * 1000:.1f}",
                         f"{percentile(took, 95) * 1000:.1f}",
                         f"{max(took) * 1000:.1f}"])
    print_table(["database", "runs", "samples", "p50 ms", "p95 ms", "max ms"], rows)


if __name__ == "__main__":
    main()
