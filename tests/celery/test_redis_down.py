"""Redis goes down and comes back: submissions answer 503 (a GA4GH ErrorResponse, never a
500, never a hang), reads keep working, runs already accepted keep going and finish, and
everything recovers by itself when Redis returns (no restart of the API or workers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.celery.cluster import Cluster
from tests.helpers import WES, Api
from tests.redis_server import RedisServer, redis_or_skip

SUBMIT_LIMIT_SECONDS = 5.0  # a POST while Redis is down must answer within this


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory,
              redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of this module's own, since its tests stop it (``redis_server`` first: it
    skips when Redis or celery are missing)."""
    server = redis_or_skip(tmp_path_factory.mktemp("redis-down"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def down_cluster(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
                 own_redis: RedisServer) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("down-home"), catalog_dir, own_redis, 0) as c:
        c.start_worker()
        yield c


def _timed_submit(api: Api, seconds: int) -> tuple[requests.Response, float]:
    began = time.monotonic()
    resp = api.submit("sleepy", {"seconds": seconds})
    return resp, time.monotonic() - began


def test_redis_down_refuses_submissions_keeps_reads_and_recovers(
        down_cluster: Cluster, own_redis: RedisServer) -> None:
    api = down_cluster.server.api("redis-down")
    before = api.run_id(api.submit("sleepy", {"seconds": 3}))
    api.wait(before, {"RUNNING"}, timeout=60)

    own_redis.stop()
    resp, took = _timed_submit(api, 0)
    assert resp.status_code == 503, resp.text
    assert took < SUBMIT_LIMIT_SECONDS
    body = resp.json()
    assert body["status_code"] == 503
    assert "run queue is unavailable" in body["msg"]
    assert resp.headers.get("Retry-After")
    listed = api.get(f"{WES}/runs")
    assert listed.status_code == 200
    assert [r["run_id"] for r in listed.json()["runs"]] == [before]  # the 503 stored nothing
    assert api.get(f"{WES}/runs/{before}").status_code == 200
    assert api.get(f"{WES}/service-info").status_code == 200
    # the accepted run keeps going without Redis: the workers' reconciler polls the executor
    assert api.wait(before, timeout=60) == "COMPLETE", down_cluster.logs()
    assert all(w.poll() is None for w in down_cluster.workers), "a worker died"

    own_redis.start()  # same port, empty: every message it held is gone
    resp, took = _timed_submit(api, 0)
    assert resp.status_code == 200, resp.text
    assert took < SUBMIT_LIMIT_SECONDS
    after = api.run_id(resp)
    assert api.wait(after, timeout=60) == "COMPLETE", down_cluster.logs()


def test_a_run_stored_while_its_message_was_lost_is_started_by_a_reconciler(
        down_cluster: Cluster, own_redis: RedisServer) -> None:
    """The message of an accepted run is lost (Redis restarted empty before a worker took
    it): the run is in the database, so a worker's reconciler starts it anyway."""
    down_cluster.stop_workers()
    api = down_cluster.server.api("redis-lost")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    own_redis.stop()
    own_redis.start()
    down_cluster.start_worker()
    assert api.wait(run_id, timeout=60) == "COMPLETE", down_cluster.logs()
