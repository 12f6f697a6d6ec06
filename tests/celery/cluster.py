"""A real Celery deployment for the tests: one `spe serve` (SPE_DISPATCHER=celery) and
any number of `spe worker` processes sharing its SPE_HOME, on a real Redis."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.helpers import ROOT, Server
from tests.redis_server import RedisServer
from tests.tiers import starting

WORKER_READY_TIMEOUT = 60.0
LEASE_SECONDS = 2.0  # how soon an abandoned start step is taken over
# short, so that a killed worker's message is redelivered within a test
VISIBILITY_TIMEOUT_SECONDS = 5.0


class Cluster:
    def __init__(self, home: Path, catalog: Path, redis: RedisServer, db: int,
                 env: dict[str, str] | None = None, ready_path: str = "/readyz") -> None:
        self.redis = redis
        self.server = Server(home=home, catalog=catalog, ready_path=ready_path, env_extra={
            "SPE_DISPATCHER": "celery", "SPE_REDIS_URL": redis.url(db),
            "SPE_START_LEASE_SECONDS": str(LEASE_SECONDS),
            "SPE_CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_SECONDS),
            "SPE_CELERY_BROKER_TIMEOUT_SECONDS": "1", **(env or {})})
        self.workers: list[subprocess.Popen[bytes]] = []
        self._names = itertools.count()

    def __enter__(self) -> Cluster:
        self.server.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_workers()
        self.server.stop()

    @property
    def home(self) -> Path:
        return self.server.home

    def start_worker(self, *, module: str = "spe.cli.main", args: tuple[str, ...] = (),
                     concurrency: int = 2, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start `spe worker` (or a test launcher ``module`` that ends in it); wait until
        Celery reports it ready."""
        starting("a Celery worker")
        log_path = self.home / f"worker-{next(self._names)}.log"
        argv = [sys.executable, "-m", module, *args, "worker",
                "--concurrency", str(concurrency)]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.server.env(), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(proc)
        if wait:
            self._wait_ready(proc, log_path)
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}: {self.tail(log_path)}")
            if b" ready." in log_path.read_bytes():
                return
            time.sleep(0.05)
        raise RuntimeError(f"worker not ready in {WORKER_READY_TIMEOUT} s: "
                           f"{self.tail(log_path)}")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no shutdown handler runs, nothing is acknowledged."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.workers.clear()

    @staticmethod
    def tail(path: Path, n: int = 4000) -> str:
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def logs(self) -> str:
        """The API's and every worker's log tail, for assertion messages."""
        parts = [f"== server\n{self.server.log_tail()}"]
        parts += [f"== {p.name}\n{self.tail(p)}" for p in sorted(self.home.glob("worker-*.log"))]
        return "\n".join(parts)

    def engine_starts(self, run_id: str) -> int:
        """How many times an engine was launched for ``run_id`` (Snakemake prints this line
        once per invocation into the run's stderr log, which is opened for appending)."""
        log = self.home / "runs" / run_id / "logs" / "stderr.log"
        return log.read_text(errors="replace").count("Building DAG of jobs")
