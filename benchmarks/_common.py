"""Shared pieces of the benchmark scripts: the machine description, percentiles, a table
printer, and the service started in-process with a stubbed dispatcher.

Not a test module: the scripts print absolute figures and ratios, they assert nothing
about speed."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `tests.helpers` is not installed; the scripts run from anywhere
    sys.path.insert(0, str(ROOT))
# connexion imports starlette's TestClient, which warns about httpx on every start-up
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

import requests  # noqa: E402
import uvicorn  # noqa: E402

import spe  # noqa: E402
from spe.adapters.queue.inline import NullDispatcher  # noqa: E402
from spe.app import create_app  # noqa: E402
from spe.config import Settings  # noqa: E402
from tests.helpers import WES, Server, build_catalog, free_port  # noqa: E402

__all__ = [
    "ROOT",
    "SERVER_MODES",
    "WES",
    "CpuWatch",
    "InProcessServer",
    "build_catalog",
    "free_port",
    "machine_lines",
    "percentile",
    "poll_until_complete",
    "print_machine",
    "print_table",
    "scratch_dir",
    "submit_parts",
    "summarize",
]

SERVER_MODES = ("process", "thread")


# -- the machine -------------------------------------------------------------------------

def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return "unknown"


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _tree() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown (no git)"
    try:
        head = subprocess.run([git, "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True, timeout=10).stdout
        dirty = subprocess.run([git, "-C", str(ROOT), "status", "--porcelain", "--", "spe",
                                "tests"], capture_output=True, text=True,
                               check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return f"{ROOT} is not a git checkout"
    changed = len(dirty.splitlines())
    return f"{head.strip()}" + (f" + {changed} uncommitted files under spe/ tests/"
                                if changed else " (clean)")


def machine_lines() -> list[tuple[str, str]]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return [
        ("cpu", _cpu_model()),
        ("cores", f"{os.cpu_count()} (usable by this process: {usable})"),
        ("memory", _mem_total()),
        ("os", f"{_os_name()}, kernel {platform.release()}"),
        ("load", "1/5/15 min load average {:.2f} {:.2f} {:.2f} at start".format(
            *os.getloadavg())),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("sqlite", sqlite3.sqlite_version),
        ("tree", f"{_tree()}; spe imported from {Path(spe.__file__).parent}"),
        ("packages", ", ".join(f"{d} {_version(d)}" for d in
                               ("spe", "connexion", "uvicorn", "sqlalchemy", "requests",
                                "snakemake"))),
    ]


def print_machine(title: str) -> None:
    print(f"== {title} ==")
    for key, value in machine_lines():
        print(f"{key:>9}: {value}")
    print()


class CpuWatch:
    """How busy the rest of the machine was while a benchmark ran: CPU time of all
    processes (``/proc/stat``) minus that of this process and its reaped children. Other
    work on a 2-core machine skews every figure, so the scripts print it with the results."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._sys0 = self._system_busy()
        self._own0 = self._own()

    @staticmethod
    def _system_busy() -> float:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return float("nan")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    def report(self) -> str:
        wall = time.monotonic() - self._t0
        own = self._own() - self._own0
        other = max(0.0, self._system_busy() - self._sys0 - own)
        return (f"CPU during the measurement ({wall:.0f} s wall): this benchmark "
                f"{own / wall:.2f} cores on average, other processes {other / wall:.2f} of "
                f"{os.cpu_count()} cores")


# -- statistics and tables ---------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(latencies: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    return {f"p{q}": percentile(latencies, q) * 1000 for q in (50, 95, 99)}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n and _numeric(c) else c.ljust(w)
                        for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).replace("x", "").isdigit()


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary directory, removed afterwards unless ``keep``."""
    if keep:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        print(f"(keeping {path})")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


# -- a WES submission body ---------------------------------------------------------------

def submit_parts(workflow_url: str, params_json: str,
                 tags_json: str = "{}") -> list[tuple[str, tuple[None, str]]]:
    """The multipart/form-data fields of ``POST /runs``, as ``tests.helpers.Api`` sends."""
    form = {"workflow_url": workflow_url, "workflow_type": "SMK", "workflow_type_version": "9",
            "workflow_params": params_json, "tags": tags_json}
    return [(k, (None, v)) for k, v in form.items()]


# -- the service in-process, execution stubbed -------------------------------------------

def _quiet() -> None:
    # the dev issuer's start-up banner is a WARNING by design; keep the tables readable
    logging.getLogger("spe").setLevel(logging.ERROR)


def _build(home: Path, catalog: Path, port: int,
           database_url: str = "") -> tuple[Any, uvicorn.Server]:
    _quiet()
    service = create_app(Settings(home=home, catalog_dir=catalog, database_url=database_url),
                         dispatcher_factory=NullDispatcher)
    config = uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False)
    return service, uvicorn.Server(config)


def _serve_in_child(home: str, catalog: str, port: int, database_url: str = "") -> None:
    _service, server = _build(Path(home), Path(catalog), port, database_url)
    server.run()  # uvicorn handles SIGTERM here: lifespan shutdown, then exit


@dataclass
class InProcessServer:
    """``create_app(..., dispatcher_factory=NullDispatcher)`` served by uvicorn on loopback.

    ``mode="thread"``: uvicorn in a background thread of this process (the client threads
    then share the GIL with the server). ``mode="process"``: the same app built and served
    in a child process started with ``multiprocessing`` (spawn), so that client and server
    each have their own interpreter, as in production. Either way nothing is executed: the
    dispatcher only records the run ids."""

    home: Path
    catalog: Path
    mode: str = "process"
    port: int = field(default_factory=free_port)
    database_url: str = ""  # empty: SQLite in home
    _thread: threading.Thread | None = None
    _server: uvicorn.Server | None = None
    _service: Any = None
    _proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> InProcessServer:
        if self.mode == "thread":
            self._service, self._server = _build(self.home, self.catalog, self.port,
                                                 self.database_url)
            self._thread = threading.Thread(target=self._server.run, name="uvicorn",
                                            daemon=True)
            self._thread.start()
        elif self.mode == "process":
            ctx = multiprocessing.get_context("spawn")
            self._proc = ctx.Process(target=_serve_in_child, name="spe-bench-server",
                                     args=(str(self.home), str(self.catalog), self.port,
                                           self.database_url))
            self._proc.start()
        else:
            raise ValueError(f"unknown server mode {self.mode!r}; use one of {SERVER_MODES}")
        self._wait_ready(timeout)
        return self

    def _alive(self) -> bool:
        if self._thread is not None:
            return self._thread.is_alive()
        return self._proc is not None and self._proc.is_alive()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive():
                raise RuntimeError("the benchmark server exited during start-up")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the benchmark server was not ready within {timeout} s")

    def token(self, user: str = "bench") -> str:
        """A dev-issuer token for ``user``, minted exactly as the test suite mints them
        (``tests.helpers.Server.token``: the issuer's key in SPE_HOME, plus whatever claims
        the tests give their users)."""
        return Server(home=self.home, catalog=self.catalog, port=self.port).token(user)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
            self._thread = self._server = self._service = None
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join(timeout=20)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=10)
            self._proc = None

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- waiting for a run -------------------------------------------------------------------

ENDED_BADLY = ("EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED")


def poll_until_complete(session: requests.Session, status_url: str, *, started: float,
                        timeout: float, poll: float, server: Server,
                        name: str = "") -> tuple[float, float]:
    """Poll ``status_url`` every ``poll`` s until COMPLETE; when it was seen, as
    (``time.perf_counter()``, ``time.time()``). Exits naming the run on any other end, or
    ``timeout`` s after ``started`` (a ``perf_counter`` time)."""
    who = f"{name}: " if name else ""
    while True:
        resp = session.get(status_url, timeout=30)
        resp.raise_for_status()
        state = resp.json()["state"]
        now, wall = time.perf_counter(), time.time()
        if state == "COMPLETE":
            return now, wall
        if state in ENDED_BADLY:
            raise SystemExit(f"{who}{status_url} ended {state}: {server.log_tail()}")
        if now - started > timeout:
            raise SystemExit(f"{who}{status_url} still {state} after {timeout:.0f} s")
        time.sleep(poll)
