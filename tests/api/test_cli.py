"""The `spe` CLI driven as a user would, against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.cutting_proxy import CuttingProxy
from tests.helpers import Server, free_port


def spe(server: Server, user: str, *args: str,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPE_URL": server.url, "SPE_TOKEN": server.token(user),
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "spe.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_submit_wait_shows_progress_state_and_outputs(server: Server, user: str) -> None:
    result = spe(server, user, "run", "submit", "sleepy", "-p", "seconds=0", "--wait")
    assert result.returncode == 0, result.stderr
    assert "COMPLETE" in result.stdout
    assert "results/done.txt" in result.stdout
    assert "jobs" in result.stderr  # the progress display


def test_submit_prints_the_run_id_and_list_status_logs_find_it(server: Server,
                                                               user: str) -> None:
    submitted = spe(server, user, "run", "submit", "sleepy", "-p", "seconds=0")
    run_id = submitted.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", run_id), submitted.stdout + submitted.stderr
    assert spe(server, user, "run", "status", "--wait", run_id).returncode == 0
    assert run_id in spe(server, user, "run", "list").stdout
    tasks = spe(server, user, "run", "logs", "--tasks", run_id)
    assert "nap" in tasks.stdout and "finish" in tasks.stdout
    log = spe(server, user, "run", "logs", run_id)  # the log is output: the airlock
    assert log.returncode != 0 and "HTTP 403" in log.stderr
    assert f"spe release request {run_id} --file _logs/stderr.txt" in log.stderr


def test_cancel_through_the_cli(server: Server, user: str) -> None:
    run_id = spe(server, user, "run", "submit", "sleepy", "-p", "seconds=120").stdout.strip()
    server.api(user).wait(run_id, {"RUNNING"})
    result = spe(server, user, "run", "cancel", "--wait", run_id)
    assert result.returncode == 0, result.stderr
    assert "CANCELED" in result.stdout


def test_a_refused_submission_exits_nonzero_with_the_servers_message(
        server: Server, user: str) -> None:
    result = spe(server, user, "run", "submit", "sleepy", "-p", "seconds=9999")
    assert result.returncode != 0
    assert "HTTP 400" in result.stderr and "/seconds" in result.stderr


def test_without_a_token_the_cli_says_how_to_get_one(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SPE_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "run", "--url", server.url,
                             "list"], env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode != 0
    assert "spe dev token" in result.stderr


def test_dev_token_refuses_bad_user_names(server: Server) -> None:
    env = {**os.environ, "SPE_HOME": str(server.home)}
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "dev", "token", "--user",
                             "Robert'); DROP TABLE"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0


def test_submit_retries_a_lost_answer_with_its_key_and_makes_one_run(
        server: Server, user: str) -> None:
    proxy = CuttingProxy(server.port, b"POST /ga4gh/wes/v1/runs ", cuts=2).start()
    try:
        env = {**os.environ, "SPE_URL": proxy.url, "SPE_TOKEN": server.token(user)}
        result = subprocess.run([sys.executable, "-m", "spe.cli.main", "run", "submit",
                                 "sleepy", "-p", "seconds=0"], env=env, capture_output=True,
                                text=True, timeout=120, check=False)
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stderr
    assert proxy.cut_done == 2  # two answers were lost, each after the server made the run
    runs = server.api(user).get("/ga4gh/wes/v1/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == [result.stdout.strip()]


def test_submit_that_cannot_reach_the_server_says_how_to_repeat_it_safely(
        user: str) -> None:
    env = {**os.environ, "SPE_URL": f"http://127.0.0.1:{free_port()}", "SPE_TOKEN": "x"}
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "run", "submit", "sleepy",
                             "--retries", "0"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
