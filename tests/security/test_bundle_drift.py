"""Issue 11, finding 6: the allowlist digest was checked only at start-up, so a bundle
changed on disk after that ran while the audit recorded the approved digest. The copy a
run executes is now hashed after it is copied into the run directory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import WES, Server, build_catalog


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    server = Server(home=tmp_path / "home", catalog=build_catalog(tmp_path / "catalog")).start()
    yield server
    server.stop()


def test_bundle_changed_after_start_is_refused_at_run_time(srv: Server) -> None:
    api = srv.api("alice")
    assert api.wait(api.run_id(api.submit("sleepy", {"seconds": 0}))) == "COMPLETE"

    snakefile = srv.catalog / "sleepy/1.0.0/bundle/Snakefile"
    snakefile.write_text(snakefile.read_text() + "\nshell('echo planted')\n")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))

    assert api.wait(run_id) == "SYSTEM_ERROR"
    run_log = api.get(f"{WES}/runs/{run_id}").json()["run_log"]
    message = " ".join(run_log["system_logs"])
    assert "sleepy@1.0.0" in message and "changed on disk" in message, message
    assert not (srv.home / "runs" / run_id / "handle.json").exists()  # nothing started
    with sqlite3.connect(srv.home / "spe.db") as db:
        rows = db.execute("SELECT actor, outcome, details FROM audit_events "
                          "WHERE action = 'catalog.drift' AND target = ?",
                          (run_id,)).fetchall()
    assert len(rows) == 1, rows
    actor, outcome, details = rows[0]
    assert (actor, outcome) == ("system", "refused")
    recorded = json.loads(details)
    assert recorded["workflow"] == "sleepy@1.0.0"
    assert recorded["approved"] != recorded["found"]
