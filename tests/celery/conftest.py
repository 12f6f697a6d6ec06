"""Fixtures of the Celery tests: a real Redis (``tests/redis_server.py``), a real `spe serve`
with SPE_DISPATCHER=celery and real `spe worker` processes, all on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.celery.cluster import Cluster
from tests.redis_server import RedisServer, databases


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
            redis_server: RedisServer) -> Iterator[Cluster]:
    """An API on the session's Redis (a database of its own); tests start their workers."""
    home = tmp_path_factory.mktemp("celery-home")
    with Cluster(home, catalog_dir, redis_server, next(databases)) as started:
        yield started
