"""Shared fixtures: a real server per test session (and fresh ones where a test needs); the
``external`` marker of the tests that need one (``tests/tiers.py``)."""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.session import make_engine, make_sessions, upgrade
from tests.helpers import ROOT, Api, Server, build_catalog
from tests.postgres import PostgresServer, postgres_or_skip
from tests.redis_server import RedisServer, redis_or_skip
from tests.s3_server import S3Server, s3_or_skip
from tests.slurm_cluster import stop_if_started
from tests.tiers import mark_external, running
from tests.wes_schema import UNVALIDATED, unvalidated_reason

_users = itertools.count()


@pytest.hookimpl(tryfirst=True)  # before `-m "not external"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_external(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    running(item)  # so the helpers that start a server can check the item's marker
    try:
        return (yield)
    finally:
        running(None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that passed but could not validate some responses against the official WES
    document (``tests/wes_schema.py``: none found) is reported as skipped, with why."""
    UNVALIDATED.clear()
    result = yield  # a failing test raises here and stays failed
    reason = unvalidated_reason()
    if reason:
        pytest.skip(reason)
    return result


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_catalog(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    srv = Server(home=tmp_path_factory.mktemp("home"), catalog=catalog_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def user() -> str:
    """A fresh user name, so listings of one test don't see another's runs."""
    return f"user{next(_users)}"


@pytest.fixture
def api(server: Server, user: str) -> Api:
    return server.api(user)


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """A test that runs the `spe` CLI in this process gets the service's umask (077); it
    must not leak into the next test (a cluster directory or config the researchers' jobs
    must read would be written private)."""
    mask = os.umask(0o077)
    os.umask(mask)
    yield
    os.umask(mask)


@pytest.fixture(scope="session", autouse=True)
def _stop_slurm_we_started() -> Iterator[None]:
    """The single-node SLURM cluster some tests start is stopped when the session ends."""
    yield
    stop_if_started()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3 server (SeaweedFS, ``tests/s3_server.py``) for the whole test session;
    tests make buckets of their own in it."""
    server = s3_or_skip(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole test session, started when a test first asks
    for it (see ``tests/postgres.py``); tests take a fresh database or schema of it."""
    server = postgres_or_skip(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


def _celery_or_skip() -> None:
    try:
        import celery  # noqa: F401
    except ImportError as exc:
        if os.environ.get("SPE_REQUIRE_REDIS") == "1":
            pytest.fail(f"SPE_REQUIRE_REDIS=1 but celery is not installed: {exc}")
        pytest.skip("celery is not installed (pip install -e '.[celery]')")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis for the whole test session (``tests/redis_server.py``); each Celery
    deployment of the tests takes a database (queue namespace) of its own."""
    _celery_or_skip()
    server = redis_or_skip(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def toy_plugin(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The toy site executor of ``tests/plugins`` installed (its distribution on sys.path,
    so its ``spe.executors`` entry point is found); returns its simulated machine."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "plugins"))
    importlib.invalidate_caches()
    from spe_toy_executor import MACHINE

    return MACHINE  # type: ignore[return-value]


# --- databases: an empty SQLite file, and an empty schema of the session's PostgreSQL -----

@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: no tables, so no rows of other tests."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spe.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.reset_schema()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessions(engine)

