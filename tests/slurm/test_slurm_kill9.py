"""kill -9 of the API and of the Celery workers at random points across a batch of runs on
the real SLURM cluster: every run reaches its true final state, no run gets two SLURM
jobs or two engine starts, and none is left stuck. Repeated with different seeds."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.celery.cluster import Cluster
from tests.helpers import FINAL, WES, Api
from tests.redis_server import RedisServer, databases
from tests.slurm.conftest import slurm_server
from tests.slurm_cluster import SlurmCluster

RUNS = 8


@pytest.fixture(scope="module")
def redis(redis_server: RedisServer) -> RedisServer:
    return redis_server


def slurm_jobs_named(cluster: SlurmCluster, run_id: str) -> int:
    """Jobs of this run the controller ever finished (jobcomp) or still holds."""
    done = (cluster.state_dir / "log" / "jobcomp.txt").read_text(errors="replace")
    live = cluster.scontrol("show", "jobs", "-o")
    finished = done.count(f" Name=spe-{run_id} ")
    running = sum(1 for line in live.splitlines() if f"JobName=spe-{run_id} " in line
                  and "JobState=COMPLETED" not in line and "JobState=FAILED" not in line
                  and "JobState=CANCELLED" not in line)
    return finished + running


def chaos(c: Cluster, rng: random.Random, rounds: int) -> None:
    """Kill the API or a worker with SIGKILL at random moments, and start it again."""
    for _ in range(rounds):
        time.sleep(rng.uniform(0.1, 1.5))
        if rng.random() < 0.4:
            c.server.stop(signal.SIGKILL)
            c.server.start()
        else:
            alive = [w for w in c.workers if w.poll() is None]
            if alive:
                c.kill(rng.choice(alive))
            c.start_worker(concurrency=2, wait=False)


def states(api: Api, run_ids: list[str], timeout: float = 400) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = {r: api.get(f"{WES}/runs/{r}/status").json()["state"] for r in run_ids}
        if all(s in FINAL for s in seen.values()):
            return seen
        time.sleep(1)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23])
def test_kill9_of_api_and_workers_leaves_every_run_in_its_true_final_state(
        seed: int, cluster: SlurmCluster, slurm_home: Path, catalog_dir: Path,
        redis: RedisServer) -> None:
    rng = random.Random(seed)  # noqa: S311 -- chaos, not cryptography: a seed to replay
    env = dict(slurm_server(slurm_home / f"kill9-{seed}", catalog_dir, cluster).env_extra)
    # four head jobs at most, so that their rule jobs always find a free CPU of the 8
    env.update(SPE_MAX_ACTIVE_RUNS="4", SPE_SLURM_MAX_TIME_MINUTES="10")
    with Cluster(slurm_home / f"kill9-{seed}", catalog_dir, redis, db=next(databases),
                 env=env) as c:
        c.start_worker(concurrency=2)
        c.start_worker(concurrency=2)
        api = c.server.api("alice")
        expected: dict[str, str] = {}
        for i in range(RUNS):
            fail = i % 4 == 3
            run_id = api.run_id(api.submit("sleepy", {"seconds": rng.randint(1, 4),
                                                      "fail": fail}))
            expected[run_id] = "EXECUTOR_ERROR" if fail else "COMPLETE"
            if rng.random() < 0.3:
                chaos(c, rng, 1)
        chaos(c, rng, 4)
        c.start_worker(concurrency=2)  # at least one worker that nobody kills
        final = states(c.server.api("alice"), list(expected))
        assert final == expected, c.logs()
        for run_id in expected:
            assert slurm_jobs_named(cluster, run_id) == 1, run_id
            assert c.engine_starts(run_id) == 1, run_id
