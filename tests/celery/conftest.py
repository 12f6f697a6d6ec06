"""Fixtures of the Celery tests: a real Redis (``tests/redis_server.py``), a real `spe serve`
with SPE_DISPATCHER=celery and real `spe worker` processes, all on loopback."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.celery.cluster import Cluster
from tests.redis_server import RedisServer, redis_or_skip

_databases = itertools.count(1)  # one Redis database (queue namespace) per cluster


def _celery_or_skip() -> None:
    try:
        import celery  # noqa: F401
    except ImportError as exc:
        if os.environ.get("SPE_REQUIRE_REDIS") == "1":
            pytest.fail(f"SPE_REQUIRE_REDIS=1 but celery is not installed: {exc}")
        pytest.skip("celery is not installed (pip install -e '.[celery]')")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    _celery_or_skip()
    server = redis_or_skip(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
            redis_server: RedisServer) -> Iterator[Cluster]:
    """An API on the session's Redis (a database of its own); tests start their workers."""
    home = tmp_path_factory.mktemp("celery-home")
    with Cluster(home, catalog_dir, redis_server, next(_databases)) as started:
        yield started
