"""Celery mode: `/readyz` checks Redis (200 with it, 503 naming it when it stops, the
database still fine); a `spe worker` serves its own metrics (its reconciler's lag) on its
metrics port; the run's life is in JSON lines across the API's log (accepted) and the
worker's (started, state changes, ended), each carrying the run id; the API's `/metrics`
counts the run the worker ran (the numbers come from the database)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.celery.cluster import Cluster
from tests.helpers import free_port
from tests.redis_server import RedisServer, redis_or_skip

TOKEN = "celery-scrape-token"


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory,
              redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of this module's own, since a test stops it."""
    server = redis_or_skip(tmp_path_factory.mktemp("redis-obs"))
    yield server
    server.stop()


def events(path: Path, run_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line.get("run_id") == run_id and "event" in line]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_celery_mode_readiness_worker_metrics_and_json_logs(
        tmp_path: Path, catalog_dir: Path, own_redis: RedisServer) -> None:
    metrics_port = free_port()
    with Cluster(tmp_path / "home", catalog_dir, own_redis, 0, env={
            "SPE_LOG_FORMAT": "json", "SPE_METRICS_TOKEN": TOKEN,
            "SPE_WORKER_METRICS_PORT": str(metrics_port)}) as c:
        ready = requests.get(c.server.url + "/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"database", "redis", "storage"}
        c.start_worker()
        api = c.server.api("celery-observer")
        run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
        assert api.wait(run_id, timeout=90) == "COMPLETE", c.logs()

        worker = samples(requests.get(f"http://127.0.0.1:{metrics_port}/metrics",
                                      timeout=10).text)
        assert worker[("spe_reconciler_lag_seconds", ())] < 10
        assert worker[("spe_reconciler_last_success_timestamp_seconds", ())] > 0
        api_side = samples(requests.get(c.server.url + "/metrics", timeout=10, headers={
            "Authorization": f"Bearer {TOKEN}"}).text)
        assert api_side[("spe_jobs", (("kind", "run"), ("state", "COMPLETE")))] == 1
        assert api_side[("spe_job_start_latency_seconds_count", (("kind", "run"),))] == 1
        assert ("spe_reconciler_lag_seconds", ()) not in api_side  # no reconciler there

        served = [e["event"] for e in events(c.home / "server.log", run_id)]
        worked = events(c.home / "worker-0.log", run_id)
        assert served[0] == "run.accepted"
        assert worked[-1]["event"] == "run.ended" and worked[-1]["state"] == "COMPLETE"
        started = next(e for e in worked if e["event"] == "run.started")
        assert started["executor"] == "local" and started["executor_id"]

        own_redis.stop()
        down = requests.get(c.server.url + "/readyz", timeout=30)
        assert down.status_code == 503, down.text
        body = down.json()
        assert body["reason"] == "redis"
        assert body["checks"]["redis"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        assert requests.get(c.server.url + "/healthz", timeout=10).status_code == 200
