"""The server is killed (SIGKILL) mid-run and restarted: it re-attaches to the engine from
the handle stored on the run and reports the run's true final state."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import WES, Api, Server

pytestmark = pytest.mark.external  # the tests start `spe serve` themselves (tests/tiers.py)


def _server(tmp_path: Path, catalog_dir: Path) -> Server:
    return Server(home=tmp_path / "home", catalog=catalog_dir).start()


def test_killed_server_reattaches_and_reports_complete(tmp_path: Path,
                                                       catalog_dir: Path) -> None:
    server = _server(tmp_path, catalog_dir)
    api = server.api("restart-ok")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 6}))
    api.wait(run_id, {"RUNNING"})
    port = server.port
    server.stop(signal.SIGKILL)  # no shutdown handlers run
    restarted = Server(home=server.home, catalog=catalog_dir, port=port).start()
    try:
        assert restarted.api("restart-ok").wait(run_id, timeout=90) == "COMPLETE"
        body = restarted.api("restart-ok").get(f"{WES}/runs/{run_id}").json()
        assert body["run_log"]["exit_code"] == 0
        assert "results/done.txt" in body["outputs"]
    finally:
        restarted.stop()


def test_a_run_that_fails_while_the_server_is_down_reports_executor_error(
        tmp_path: Path, catalog_dir: Path) -> None:
    server = _server(tmp_path, catalog_dir)
    api = server.api("restart-fail")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 2, "fail": True}))
    api.wait(run_id, {"RUNNING"})
    server.stop(signal.SIGKILL)
    exit_file = server.home / "runs" / run_id / "exit_status"
    _wait_for_file(exit_file)  # the engine finished while nobody was watching
    restarted = Server(home=server.home, catalog=catalog_dir, port=server.port).start()
    try:
        api = restarted.api("restart-fail")
        assert api.wait(run_id, timeout=60) == "EXECUTOR_ERROR"
        assert api.get(f"{WES}/runs/{run_id}").json()["run_log"]["exit_code"] == 1
    finally:
        restarted.stop()


def test_queued_runs_survive_a_restart(tmp_path: Path, catalog_dir: Path) -> None:
    server = Server(home=tmp_path / "home", catalog=catalog_dir,
                    env_extra={"SPE_WORKERS": "1"}).start()
    api = server.api("restart-queue")
    ids = [api.run_id(api.submit("sleepy", {"seconds": 3})) for _ in range(3)]
    server.stop(signal.SIGKILL)
    restarted = Server(home=server.home, catalog=catalog_dir, port=server.port).start()
    try:
        api = restarted.api("restart-queue")
        assert [api.wait(i, timeout=120) for i in ids] == ["COMPLETE"] * 3
    finally:
        restarted.stop()


def _wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear")


def test_a_handle_less_canceling_run_whose_engine_ended_does_not_kill_the_server(
        tmp_path: Path, catalog_dir: Path) -> None:
    """The state a kill -9 between starting the engine and recording its handle leaves, when
    a cancel is then accepted and the engine ends before the next recovery. The recovery
    must neither signal process group 0 (the server's own) nor leave the run CANCELING."""
    server = _server(tmp_path, catalog_dir)
    api = server.api("restart-handle-less")
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    assert api.wait(run_id) == "COMPLETE"
    server.stop()
    workdir = server.home / "runs" / run_id
    (workdir / "handle.json").unlink()
    assert (workdir / "exit_status").read_text().strip() == "0"
    db = sqlite3.connect(server.home / "spe.db")
    with db:
        db.execute("UPDATE runs SET state = 'CANCELING', handle = NULL, end_time = NULL, "
                   "outputs = '[]' WHERE id = ?", (run_id,))
    db.close()

    restarted = Server(home=server.home, catalog=catalog_dir, port=server.port).start()
    try:
        api = restarted.api("restart-handle-less")
        assert api.wait(run_id, timeout=60) == "CANCELED"
        body = api.get(f"{WES}/runs/{run_id}").json()
        assert body["run_log"]["end_time"]
        time.sleep(1.5)  # several reconcile rounds later the server is still serving
        assert restarted.proc is not None and restarted.proc.poll() is None
        assert api.get(f"{WES}/runs/{run_id}/status").status_code == 200
    finally:
        restarted.stop()


def test_a_keyed_post_cut_off_by_a_kill_makes_one_run_when_retried(
        tmp_path: Path, catalog_dir: Path) -> None:
    """The server is killed (SIGKILL) at a different moment of a keyed POST each round;
    whether or not that POST made the run, retrying it with its key leaves exactly one."""
    server = _server(tmp_path, catalog_dir)
    user = "restart-keyed"
    try:
        for round_, delay in enumerate((0.0, 0.004, 0.008, 0.015, 0.03)):
            key = f"round-{round_}"
            api = server.api(user)
            post = threading.Thread(target=_post_quietly, args=(api, key))
            post.start()
            time.sleep(delay)
            server.stop(signal.SIGKILL)
            post.join(timeout=30)
            server = Server(home=server.home, catalog=catalog_dir, port=server.port).start()
            api = server.api(user)
            run_id = api.run_id(api.submit("sleepy", {"seconds": 0},
                                           headers={"Idempotency-Key": key}))
            runs = api.get(f"{WES}/runs", params={"page_size": 50}).json()["runs"]
            assert len(runs) == round_ + 1 and runs[0]["run_id"] == run_id, (round_, runs)
    finally:
        server.stop()


def _post_quietly(api: Api, key: str) -> None:
    with contextlib.suppress(requests.RequestException):
        api.submit("sleepy", {"seconds": 0}, headers={"Idempotency-Key": key})
