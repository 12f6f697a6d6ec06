"""A real server on a real PostgreSQL server: a run submitted over HTTP completes, and its row
is in PostgreSQL (not in a SQLite file in SPE_HOME)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from spe.adapters.db.tables import RunRow, TaskRow
from tests.helpers import Server
from tests.postgres import PostgresServer

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
              pg_url: str) -> Iterator[Server]:
    srv = Server(home=tmp_path_factory.mktemp("home-pg"), catalog=catalog_dir,
                 env_extra={"SPE_DATABASE_URL": pg_url}).start()
    yield srv
    srv.stop()


def test_run_on_postgres_completes_and_is_stored_in_postgres(
        pg_server: Server, pg_url: str) -> None:
    api = pg_server.api("pguser")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))

    assert api.wait(run_id) == "COMPLETE", pg_server.log_tail()

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(RunRow.state, RunRow.owner_sub, RunRow.owner_name,
                                      RunRow.workflow_id, RunRow.exit_code, RunRow.seq)
                               .where(RunRow.id == run_id)).one()
            tasks = conn.execute(select(TaskRow.task_id).where(TaskRow.run_seq == row.seq)).all()
    finally:
        engine.dispose()
    assert (row.state, row.owner_sub, row.owner_name, row.workflow_id, row.exit_code) == (
        "COMPLETE", "dev|pguser", "pguser", "sleepy", 0)
    assert tasks, "the run's task logs are stored in PostgreSQL too"
    assert not (pg_server.home / "spe.db").exists()
