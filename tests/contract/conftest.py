"""Fixtures of the contract suites. The session's PostgreSQL server (``postgres_server``)
comes from ``tests/conftest.py``; ``db_url`` gives every database suite an empty SQLite
file and an empty schema of that server, and ``engine`` the schema of the real Alembic
migrations on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.session import make_engine, make_sessions, upgrade
from tests.postgres import PostgresServer


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

