"""The chaos suite's driver: submits keyed runs, cancels some, kills (SIGKILL) the API or a
worker at random moments, seeded, and then checks what an operator's worst day must not
leave behind: lost, stuck, wrongly ended, duplicated or orphaned runs, or a broken audit
chain. See docs/operators.md (chaos suite) for the commands."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from spe.adapters.db.repository import utc
from tests.helpers import FINAL, WES, Api, Server

RETRY_SECONDS = 90.0  # how long a client keeps retrying while the service restarts


@dataclass
class Expected:
    """What one submitted run must end as."""

    fail: bool
    canceled: bool = False  # a cancel was accepted (200)

    @property
    def state(self) -> str:
        if self.canceled:
            return "CANCELED"
        return "EXECUTOR_ERROR" if self.fail else "COMPLETE"


@dataclass
class Figures:
    """What one chaos run did, for its report."""

    runs: int = 0
    cancels: int = 0
    server_kills: int = 0
    worker_kills: int = 0
    cut_posts: int = 0  # keyed POSTs whose answer a kill took away
    cut_posts_that_made_a_run: int = 0
    seconds: float = 0.0

    def line(self, name: str) -> str:
        return (f"chaos {name}: {self.runs} runs, {self.cancels} cancels, "
                f"{self.server_kills} API kills, {self.worker_kills} worker kills, "
                f"{self.cut_posts} keyed POSTs cut off ({self.cut_posts_that_made_a_run} had "
                f"made their run), {self.seconds:.0f} s; 0 lost, 0 stuck, 0 wrong, "
                "0 duplicates, 0 orphans, audit chain intact")


REPORT: list[str] = []  # lines for the terminal summary (tests/chaos/conftest.py)


@dataclass
class Monkey:
    """Drives one deployment. ``kill_worker`` (Celery mode) kills a random worker and
    starts a new one; without it only the API is killed."""

    server: Server
    user: str
    rng: random.Random
    kill_worker: Callable[[random.Random], None] | None = None
    expected: dict[str, Expected] = field(default_factory=dict)
    figures: Figures = field(default_factory=Figures)
    keys: set[str] = field(default_factory=set)
    post_seconds: float = 0.02  # how long a POST takes, as measured

    def api(self) -> Api:
        return self.server.api(self.user)

    def run(self, runs: int) -> None:
        began = time.monotonic()
        for _ in range(runs):
            self._submit_one()
            if self.expected and self.rng.random() < 0.25:
                self._cancel(self.rng.choice(list(self.expected)))
            roll = self.rng.random()
            if roll < 0.08:
                self._kill_server_mid_post()
            elif roll < 0.14:
                self._kill_server()
            elif self.kill_worker is not None and roll < 0.30:
                self.kill_worker(self.rng)
                self.figures.worker_kills += 1
            time.sleep(self.rng.uniform(0, 0.4))
        self.figures.runs = len(self.expected)
        self.figures.seconds = time.monotonic() - began

    # --- actions ------------------------------------------------------------------------

    def _post(self, key: str, fail: bool, seconds: int) -> requests.Response:
        return self.api().submit("sleepy", {"seconds": seconds, "fail": fail},
                                 headers={"Idempotency-Key": key})

    def _submit_one(self) -> None:
        key, fail, seconds = uuid.uuid4().hex, self.rng.random() < 0.2, self.rng.randint(0, 3)
        began = time.monotonic()
        run_id = retry(lambda: self._post(key, fail, seconds))
        took = time.monotonic() - began
        if took < 1.0:  # answered at once: how long a POST is in flight
            self.post_seconds = 0.8 * self.post_seconds + 0.2 * took
        self._record(key, run_id, fail)

    def _record(self, key: str, run_id: str, fail: bool) -> None:
        assert key not in self.keys and run_id not in self.expected, "a key made two runs"
        self.keys.add(key)
        self.expected[run_id] = Expected(fail)

    def _cancel(self, run_id: str) -> None:
        def cancel() -> requests.Response:
            return self.api().post(f"{WES}/runs/{run_id}/cancel")

        status = retry_status(cancel)
        if status == 200:
            self.expected[run_id].canceled = True
            self.figures.cancels += 1
        else:
            assert status == 409, status  # it had already ended

    def _kill_server(self) -> None:
        self.server.stop(signal.SIGKILL)
        self.figures.server_kills += 1
        self.server.start()

    def _kill_server_mid_post(self) -> None:
        """A keyed POST in flight when the API dies; the client then retries it."""
        key, fail, seconds = uuid.uuid4().hex, self.rng.random() < 0.2, self.rng.randint(0, 3)
        answered: list[str] = []
        post = threading.Thread(target=self._post_once, args=(key, fail, seconds, answered))
        post.start()
        if self.rng.random() < 0.5:  # at a moment while it is in flight
            time.sleep(self.rng.uniform(0.1, 1.1) * self.post_seconds)
        else:  # as soon as the run is stored: before its answer, mostly
            _wait_for_key(self.server, key, timeout=5)
        killed_at = time.time()
        self.server.stop(signal.SIGKILL)
        self.figures.server_kills += 1
        post.join(timeout=60)
        self.server.start()
        run_id = retry(lambda: self._post(key, fail, seconds))
        if answered:
            assert answered == [run_id]
        else:
            self.figures.cut_posts += 1
            self.figures.cut_posts_that_made_a_run += _made_before(self.server, run_id,
                                                                   killed_at)
        self._record(key, run_id, fail)

    def _post_once(self, key: str, fail: bool, seconds: int, answered: list[str]) -> None:
        with contextlib.suppress(requests.RequestException):
            resp = self._post(key, fail, seconds)
            if resp.status_code == 200:
                answered.append(resp.json()["run_id"])


def retry(call: Callable[[], requests.Response]) -> str:
    """The run id of ``call``'s answer, retrying while the service is down or restarting."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            resp = call()
            if resp.status_code == 200:
                return str(resp.json()["run_id"])
            if resp.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                raise AssertionError(f"HTTP {resp.status_code}: {resp.text[:500]}")
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def retry_status(call: Callable[[], requests.Response]) -> int:
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            resp = call()
            if resp.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                return resp.status_code
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _wait_for_key(server: Server, key: str, timeout: float) -> None:
    """Until the submission key ``key`` is stored (its run with it), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error):
            db = sqlite3.connect(server.home / "spe.db", timeout=0.1)
            try:
                if db.execute("SELECT 1 FROM submission_keys WHERE key = ?",
                              (key,)).fetchone():
                    return
            finally:
                db.close()
        time.sleep(0.001)


def _made_before(server: Server, run_id: str, instant: float) -> bool:
    """Did the server make ``run_id`` before ``instant`` (a POST whose answer was lost)?"""
    db = sqlite3.connect(server.home / "spe.db")
    try:
        row = db.execute("SELECT created_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        db.close()
    created = utc(datetime.fromisoformat(str(row[0])))
    return created is not None and created.timestamp() < instant


# --- checks -------------------------------------------------------------------------------


def wait_final(api: Api, run_ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = {r: retry_json(api, f"{WES}/runs/{r}/status")["state"] for r in run_ids}
        if all(s in FINAL for s in seen.values()):
            return seen
        time.sleep(0.5)
    return seen


def retry_json(api: Api, path: str) -> dict[str, object]:
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            resp = api.get(path)
            if resp.status_code == 200:
                body = resp.json()
                assert isinstance(body, dict)
                return body
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"GET {path} kept failing")
        time.sleep(0.2)


def check(monkey: Monkey, home: Path, timeout: float, logs: Callable[[], str]) -> None:
    """0 lost, 0 stuck, 0 wrong final state, 0 duplicates, 0 orphans, audit chain intact."""
    api = monkey.api()
    states = wait_final(api, list(monkey.expected), timeout)
    stuck = {r: s for r, s in states.items() if s not in FINAL}
    assert not stuck, f"stuck runs: {stuck}\n{logs()}"
    wrong = {r: (s, monkey.expected[r].state) for r, s in states.items()
             if s != monkey.expected[r].state}
    assert not wrong, f"wrong final states (got, expected): {wrong}\n{logs()}"
    for run_id, exp in monkey.expected.items():
        check_run_log(api, home, run_id, exp)
    listed = all_run_ids(api)
    assert listed == set(monkey.expected), (  # nothing lost, nothing made twice
        f"lost: {set(monkey.expected) - listed}, extra: {listed - set(monkey.expected)}")
    assert not orphan_runners(home, timeout=15), "engine processes outlived their runs"
    stray = {p.name for p in (home / "runs").iterdir()} - set(monkey.expected)
    assert not stray, f"run directories of no run: {stray}"
    verified = subprocess.run([sys.executable, "-m", "spe.cli.main", "audit", "verify"],
                              env={**os.environ, "SPE_HOME": str(home)},
                              capture_output=True, text=True, timeout=120, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def check_run_log(api: Api, home: Path, run_id: str, exp: Expected) -> None:
    body = retry_json(api, f"{WES}/runs/{run_id}")
    log = body["run_log"]
    assert isinstance(log, dict) and log.get("end_time"), (run_id, log)
    starts = engine_starts(home, run_id)
    assert starts <= 1, f"run {run_id} was started {starts} times"
    if exp.canceled:
        return
    assert log.get("start_time"), (run_id, log)
    assert log.get("exit_code") == (1 if exp.fail else 0), (run_id, log)
    outputs = body["outputs"]
    assert isinstance(outputs, dict)
    assert ("results/done.txt" in outputs) != exp.fail, (run_id, outputs)
    for path, info in outputs.items():
        check_quarantined(home, run_id, path, info["checksum"])


def check_quarantined(home: Path, run_id: str, path: str, checksum: str) -> None:
    """The output's bytes are in quarantine, and match the digest the run reports."""
    copies = list((home / "quarantine").glob(f"*/{run_id}/{path}"))
    assert len(copies) == 1, (run_id, path, copies)
    digest = "sha256:" + hashlib.sha256(copies[0].read_bytes()).hexdigest()
    assert digest == checksum, (run_id, path)


def all_run_ids(api: Api) -> set[str]:
    ids: set[str] = set()
    token = ""
    while True:
        params = f"?page_size=100{'&page_token=' + token if token else ''}"
        page = retry_json(api, f"{WES}/runs{params}")
        ids |= {str(r["run_id"]) for r in page["runs"]}  # type: ignore[union-attr]
        token = str(page.get("next_page_token") or "")
        if not token:
            return ids


def engine_starts(home: Path, run_id: str) -> int:
    log = home / "runs" / run_id / "logs" / "stderr.log"
    return log.read_text(errors="replace").count("Building DAG of jobs") if log.exists() else 0


def orphan_runners(home: Path, timeout: float) -> list[int]:
    """Pids of engine wrappers still running for any run under ``home`` (after a grace)."""
    marker = f"{home / 'runs'}/".encode()
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = (proc / "cmdline").read_bytes()
                    if b"spe.adapters.executors.runner" in cmdline and marker in cmdline:
                        found.append(int(proc.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
