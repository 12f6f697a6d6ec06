"""The `spe` CLI against a real server, as people and scripts use it: a bad token on every
command, JSON output parsed, tables in a pseudo-terminal and piped, run list filters,
following a run across a server restart, Ctrl-C while following, `logs -f`, and the
airlock commands (resubmit, withdraw, revoke, a download checked against the request)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spe.cli.main import main
from tests.helpers import Api, Server
from tests.unit.test_cli_errors import COMMANDS, _name

REVIEWER = ("spe:demo", "spe:demo:role=reviewer")
RR = "/spe/v1/release-requests"


def env_for(server: Server, user: str, groups: tuple[str, ...] = ("spe:demo",),
            **extra: str) -> dict[str, str]:
    return {**os.environ, "SPE_URL": server.url, "SPE_TOKEN": server.token(user, groups),
            "SPE_CLI_RETRIES": "2", **extra}


def spe(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", *args], env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def spe_json(env: dict[str, str], *args: str) -> Any:
    result = spe(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def completed_run(api: Api, **tags: str) -> str:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}, tags=tags))
    assert api.wait(run_id) == "COMPLETE"
    return run_id


@pytest.mark.parametrize("command", COMMANDS, ids=_name)
def test_every_command_with_a_bad_token_exits_1_in_one_line(server: Server,
                                                           command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, list(command), env={
        "SPE_URL": server.url, "SPE_TOKEN": "not-a-token", "SPE_CLI_RETRIES": "0"})
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "HTTP 401" in result.stderr and "spe login" in result.stderr


def test_listings_and_shows_print_parseable_json(server: Server, user: str, api: Api) -> None:
    run_id = completed_run(api)
    env = env_for(server, user)
    runs = spe_json(env, "run", "list")
    assert runs["runs"][0]["run_id"] == run_id
    assert runs["runs"][0]["workflow"].startswith("sleepy@")
    assert spe_json(env, "run", "status", run_id)["state"] == "COMPLETE"
    assert any(w["id"] == "sleepy" for w in spe_json(env, "run", "workflows")["workflows"])
    entry = spe_json(env, "run", "workflows", "show", "sleepy")
    assert "seconds" in entry["params_schema"]["properties"]
    assert spe_json(env, "run", "logs", "--tasks", run_id)["task_logs"]
    assert "datasets" in spe_json(env, "data", "ls")
    assert spe_json(env, "release", "list")["requests"] == []


def test_workflows_show_lists_parameters_with_bounds(server: Server, user: str) -> None:
    result = spe(env_for(server, user), "run", "workflows", "show", "sleepy")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if " seconds " in x)
    assert "integer" in line and ">= 0" in line


def test_run_list_filters_by_state_tag_and_workflow(server: Server, user: str,
                                                    api: Api) -> None:
    tagged = completed_run(api, batch="one")
    other = completed_run(api)
    env = env_for(server, user)
    ids = lambda *a: [r["run_id"] for r in spe_json(env, "run", "list", *a)["runs"]]  # noqa: E731
    assert ids("--tag", "batch=one") == [tagged]
    assert ids("--workflow", "sleepy") == [other, tagged]
    assert ids("--workflow", "tsv-summary") == []
    assert ids("--state", "RUNNING") == []
    first = spe_json(env, "run", "list", "--page-size", "1")
    assert first["next_page_token"]
    assert ids("--page-size", "1", "--page-token", first["next_page_token"]) == [tagged]
    assert ids("--page-size", "1", "--all") == [other, tagged]


def test_tables_piped_are_whole_and_in_a_terminal_fold(server: Server, user: str,
                                                       api: Api) -> None:
    run_id = completed_run(api, note="x" * 150)
    env = env_for(server, user, COLUMNS="60")
    piped = spe(env, "run", "list")
    assert piped.returncode == 0
    row = next(x for x in piped.stdout.splitlines() if run_id in x)
    assert "x" * 150 in row  # one line, nothing cut
    text = _in_a_terminal(env, "run", "list")
    assert "Traceback" not in text and "╇" in text
    assert all(len(line) <= 60 for line in _plain(text).splitlines())
    assert "x" * 150 in "".join(re.sub(r"[^x]", "", line) for line in
                                _plain(text).splitlines())


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


def _in_a_terminal(env: dict[str, str], *args: str) -> str:
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "spe.cli.main", *args], env=env,
                            stdin=child_fd, stdout=child_fd, stderr=child_fd)
    os.close(child_fd)
    chunks = []
    while True:
        ready, _, _ = select.select([main_fd], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main_fd)
    assert proc.returncode == 0
    return b"".join(chunks).decode(errors="replace")


def test_wait_carries_on_across_a_server_restart(tmp_path: Path, catalog_dir: Path) -> None:
    srv = Server(home=tmp_path / "home", catalog=catalog_dir).start()
    try:
        env = env_for(srv, "alice")
        proc = subprocess.Popen([sys.executable, "-m", "spe.cli.main", "run", "submit",
                                 "sleepy", "-p", "seconds=8", "--wait"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_a_run(srv, "RUNNING")
        srv.stop()
        time.sleep(2)
        srv.start()
        out, err = proc.communicate(timeout=180)
    finally:
        srv.stop()
    assert "Traceback" not in out + err
    assert proc.returncode == 0, err
    assert "COMPLETE" in out
    assert "the service is back" in err


def _wait_for_a_run(srv: Server, state: str) -> str:
    api = Api(srv.url, srv.token("alice"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = api.get("/ga4gh/wes/v1/runs").json()["runs"]
        if runs and runs[0]["state"] == state:
            return str(runs[0]["run_id"])
        time.sleep(0.2)
    raise AssertionError(f"no run reached {state}")


def test_ctrl_c_while_following_leaves_the_run_and_says_how_to_follow_it(
        server: Server, user: str, api: Api) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "spe.cli.main", "run", "submit",
                             "sleepy", "-p", "seconds=60", "--wait"],
                            env=env_for(server, user), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_id = ""
    deadline = time.monotonic() + 60
    while not run_id and time.monotonic() < deadline:
        runs = api.get("/ga4gh/wes/v1/runs").json()["runs"]
        run_id = runs[0]["run_id"] if runs and runs[0]["state"] == "RUNNING" else ""
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"spe run status --wait {run_id}" in err
    assert api.get(f"/ga4gh/wes/v1/runs/{run_id}/status").json()["state"] == "RUNNING"
    api.post(f"/ga4gh/wes/v1/runs/{run_id}/cancel")


def test_logs_follow_prints_the_jobs_where_the_log_is_output(server: Server, user: str,
                                                             api: Api) -> None:
    run_id = completed_run(api)
    result = spe(env_for(server, user), "run", "logs", "-f", run_id)
    assert result.returncode == 0, result.stderr
    assert "nap" in result.stdout and f"run {run_id} COMPLETE" in result.stdout
    assert "following its jobs" in result.stderr


def _request(env: dict[str, str], run_id: str) -> str:
    made = spe(env, "release", "request", run_id, "--file", "results/done.txt",
               "--justification", "A count for the report, no individual data.")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def _vote(server: Server, request_id: str, decision: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for reviewer in ("rita", "rex"):
        body = spe_json(env_for(server, reviewer, REVIEWER), "release", "vote", request_id,
                        "--decision", decision, "--reason", "looked at it")
    return body


def test_release_resubmit_withdraw_download_and_revoke(server: Server, user: str,
                                                      api: Api, tmp_path: Path) -> None:
    env = env_for(server, user)
    returned = _request(env, completed_run(api))
    assert _vote(server, returned, "request_changes")["state"] == "RETURNED"
    assert spe_json(env, "release", "resubmit", returned)["state"] == "IN_REVIEW"
    assert _vote(server, returned, "request_changes")["state"] == "RETURNED"
    assert spe_json(env, "release", "withdraw", returned)["state"] == "WITHDRAWN"

    approved = _request(env, completed_run(api))
    _vote(server, approved, "approve")
    got = spe(env, "release", "download", approved, "--to", str(tmp_path))
    assert got.returncode == 0, got.stderr
    assert "sha256 verified" in got.stderr
    assert (tmp_path / approved / "results" / "done.txt").is_file()
    assert (tmp_path / approved / "ro-crate-metadata.json").is_file()
    revoked = spe_json(env_for(server, "rita", REVIEWER), "release", "revoke", approved)
    assert revoked["state"] == "REVOKED"
    again = spe(env, "release", "download", approved, "--to", str(tmp_path / "again"))
    assert again.returncode == 1 and "REVOKED" in again.stderr
