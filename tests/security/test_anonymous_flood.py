"""A flood of unauthenticated requests: the audit gains a few aggregated rows, not one per
request, and the client is told to slow down (429 with Retry-After)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import WES, Server

LIMIT = 50


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    server = Server(home=tmp_path_factory.mktemp("flood"), catalog=catalog_dir,
                    env_extra={"SPE_UNAUTHENTICATED_REQUESTS_PER_MINUTE": str(LIMIT)}
                    ).start()
    yield server
    server.stop()


def failures(srv: Server) -> list[str]:
    with sqlite3.connect(srv.home / "spe.db") as db:
        return [row[0] for row in db.execute(
            "SELECT details FROM audit_events WHERE action = 'auth.failure' ORDER BY id")]


def test_anonymous_flood_makes_few_audit_rows_and_is_rate_limited(srv: Server) -> None:
    before = len(failures(srv))
    with requests.Session() as session:
        answers = [session.get(srv.url + f"{WES}/runs", timeout=10) for _ in range(200)]
    statuses = [r.status_code for r in answers]
    assert statuses[:LIMIT] == [401] * LIMIT
    assert set(statuses[LIMIT:]) == {429}
    limited = answers[-1]
    assert limited.json() == {"msg": limited.json()["msg"], "status_code": 429}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    rows = failures(srv)[before:]
    assert len(rows) <= 2, rows  # one per (address, reason) this minute, not 200
