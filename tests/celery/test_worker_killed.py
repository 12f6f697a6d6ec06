"""A worker killed (SIGKILL) in the middle of a start step: another worker finishes every
run, and no run is ever started twice (one engine launch per run; an engine that was
already launched is adopted from its handle, never launched again)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions
from tests.celery.cluster import Cluster
from tests.helpers import WES, Api


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


def _stored_handle(home: Path, run_id: str) -> object:
    engine = make_engine(f"sqlite:///{home / 'spe.db'}")
    try:
        run = SqlRunRepository(make_sessions(engine)).get(run_id)
    finally:
        engine.dispose()
    return run.handle if run else None


@pytest.mark.parametrize("mode", ["before-submit", "after-submit"])
def test_a_worker_killed_mid_start_is_taken_over(cluster: Cluster, mode: str) -> None:
    cluster.stop_workers()
    doomed = cluster.start_worker(module="tests.celery.blocking_worker", args=(mode,))
    api = cluster.server.api(f"killed-{mode}")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 1}))
    marker = cluster.home / "runs" / run_id / f"blocked-{mode}"
    _wait_for(marker)  # the worker is inside Execution.start, past the compare-and-set
    assert api.get(f"{WES}/runs/{run_id}/status").json()["state"] == "INITIALIZING"
    cluster.kill(doomed)
    cluster.start_worker()
    assert api.wait(run_id, timeout=60) == "COMPLETE", cluster.logs()
    assert cluster.engine_starts(run_id) == 1
    workdir = cluster.home / "runs" / run_id
    handle = json.loads((workdir / "handle.json").read_text())
    assert _stored_handle(cluster.home, run_id) == handle
    if mode == "after-submit":  # the killed worker's engine was adopted, not relaunched
        assert handle == json.loads(marker.read_text())


def test_a_worker_killed_at_a_random_moment_loses_no_run(cluster: Cluster) -> None:
    """Kill one of two workers at a random moment while a batch is being submitted and
    started (SPE_TEST_SEED replays a moment); the other worker finishes every run."""
    cluster.stop_workers()
    seed = int(os.environ.get("SPE_TEST_SEED", time.time_ns() % 100_000))
    delay = random.Random(seed).uniform(0.1, 1.2)  # noqa: S311 - a replayable moment
    doomed = cluster.start_worker(concurrency=3)
    cluster.start_worker(concurrency=3)
    api = cluster.server.api("killed-random")
    killer = threading.Timer(delay, cluster.kill, (doomed,))
    ids = [api.run_id(api.submit("sleepy", {"seconds": 1}))]
    killer.start()
    ids += [api.run_id(api.submit("sleepy", {"seconds": 1})) for _ in range(3)]
    killer.join()
    states = sorted(_states(api, ids).values())
    print(f"seed {seed}: killed {delay:.2f} s after the first submission; states {states}")
    for run_id in ids:
        assert api.wait(run_id, timeout=90) == "COMPLETE", f"seed {seed}\n{cluster.logs()}"
        assert cluster.engine_starts(run_id) == 1, f"seed {seed}: {run_id} started twice"


def _states(api: Api, ids: list[str]) -> dict[str, str]:
    return {i: api.get(f"{WES}/runs/{i}/status").json()["state"] for i in ids}
