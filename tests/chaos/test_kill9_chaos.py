"""kill -9 at random moments, as on an operator's worst day: of the API in the embedded
default, and of the API and the Celery workers on Redis; keyed submissions cut off and
retried; cancels. Then: 0 lost, 0 stuck, 0 wrong final state (end time, exit code,
outputs in quarantine with their digests), 0 duplicates (runs or engine starts), 0 orphans
(engine processes or run directories), and an audit chain that verifies."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.celery.cluster import Cluster
from tests.chaos.conftest import chaos_runs, chaos_seed
from tests.chaos.monkey import REPORT, Monkey, check
from tests.helpers import Server
from tests.redis_server import RedisServer, databases

pytestmark = pytest.mark.chaos
SETTLE_SECONDS = 600.0  # how long the runs may take to end after the last kill


def test_kill9_of_the_embedded_server(tmp_path: Path, catalog_dir: Path) -> None:
    rng = random.Random(chaos_seed())  # noqa: S311 -- chaos, not cryptography: a seed to replay
    server = Server(home=tmp_path / "home", catalog=catalog_dir,
                    env_extra={"SPE_MAX_ACTIVE_RUNS": "4"}).start()
    try:
        monkey = Monkey(server, "chaos-embedded", rng)
        monkey.run(chaos_runs())
        check(monkey, server.home, SETTLE_SECONDS, server.log_tail)
        REPORT.append(monkey.figures.line(f"embedded (seed {chaos_seed()})"))
    finally:
        server.stop()


def test_kill9_of_the_api_and_celery_workers(tmp_path: Path, catalog_dir: Path,
                                             redis_server: RedisServer) -> None:
    rng = random.Random(chaos_seed() + 1)  # noqa: S311
    with Cluster(tmp_path / "home", catalog_dir, redis_server, next(databases),
                 env={"SPE_MAX_ACTIVE_RUNS": "4"}) as c:
        c.start_worker(concurrency=2)
        c.start_worker(concurrency=2)

        def kill_worker(rng: random.Random) -> None:
            alive = [w for w in c.workers if w.poll() is None]
            if alive:
                c.kill(rng.choice(alive))
            c.start_worker(concurrency=2, wait=False)

        monkey = Monkey(c.server, "chaos-celery", rng, kill_worker)
        monkey.run(chaos_runs())
        c.start_worker(concurrency=2)  # one that nobody kills
        check(monkey, c.home, SETTLE_SECONDS, c.logs)
        REPORT.append(monkey.figures.line(f"celery (seed {chaos_seed() + 1})"))
