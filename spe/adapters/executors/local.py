"""The local executor: one process group per run on this machine.

The engine runs under ``runner`` in its own session (so it outlives a restart of the
server). The handle names the wrapper's pid, its start time (so a reused pid is not
mistaken for ours) and the files it writes; any process can poll or cancel from it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spe.adapters.executors.handles import (
    CANCEL_FILE,
    EXIT_FILE,
    read_exit_code,
    read_handle,
    write_handle,
)
from spe.domain.models import JSON
from spe.domain.ports import ExecutionSpec, ExecutionStatus
from spe.domain.states import RunState


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live pid, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def _alive(pid: int, started: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == started


def _reused(pid: int, started: int) -> bool:
    """Another process holds the pid; the kernel reuses no pid still naming a group."""
    stat = _proc_stat(pid)
    return stat is not None and stat[1] != started


def _reap(pid: int) -> None:
    # not our child when we were restarted: init reaps it then
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _base_env(spec: ExecutionSpec) -> dict[str, str]:
    tmp = spec.workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin",
                            "/bin"])
    return {"PATH": path, "HOME": str(tmp), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(tmp), **spec.env}


class LocalExecutor:
    name = "local"

    def __init__(self, cancel_grace_seconds: float = 10.0) -> None:
        self._grace = cancel_grace_seconds

    def submit(self, spec: ExecutionSpec) -> JSON:
        spec.workdir.mkdir(parents=True, exist_ok=True)
        exit_file = spec.workdir / EXIT_FILE
        argv = [sys.executable, "-m", "spe.adapters.executors.runner", str(exit_file), "--",
                *spec.argv]
        with spec.stdout.open("ab") as out, spec.stderr.open("ab") as err:
            proc = subprocess.Popen(argv, cwd=spec.workdir, env=_base_env(spec), stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
        stat = _proc_stat(proc.pid)
        handle: JSON = {"executor": self.name, "pid": proc.pid, "pgid": proc.pid,
                        "started": stat[1] if stat else 0, "workdir": str(spec.workdir)}
        write_handle(spec.workdir, handle)
        return handle

    def find(self, run_id: str, workdir: Path) -> JSON | None:
        """The recorded handle, else a live runner whose argv names this run's exit file,
        else (when the run already ended) a handle that only reads its exit status."""
        handle = read_handle(workdir)
        if handle is not None:
            return handle
        marker = f"spe.adapters.executors.runner\0{workdir / EXIT_FILE}\0".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if marker in (proc / "cmdline").read_bytes():
                    stat = _proc_stat(int(proc.name))
                    return {"executor": self.name, "pid": int(proc.name),
                            "pgid": os.getpgid(int(proc.name)),
                            "started": stat[1] if stat else 0, "workdir": str(workdir)}
        if (workdir / EXIT_FILE).exists():
            return {"executor": self.name, "pid": 0, "pgid": 0, "started": -1,
                    "workdir": str(workdir)}
        return None

    def poll(self, handle: JSON) -> ExecutionStatus:
        workdir, pid = Path(handle["workdir"]), int(handle["pid"])
        _reap(pid)
        canceled = (workdir / CANCEL_FILE).exists()
        exit_file = workdir / EXIT_FILE
        if not exit_file.exists() and _alive(pid, int(handle["started"])):
            return ExecutionStatus(RunState.RUNNING)
        code = read_exit_code(workdir)
        if canceled:
            return ExecutionStatus(RunState.CANCELED, code, "canceled on request")
        if code is None:
            return ExecutionStatus(RunState.SYSTEM_ERROR, None,
                                   "the engine process vanished without an exit status")
        if code == 0:
            return ExecutionStatus(RunState.COMPLETE, 0)
        return ExecutionStatus(RunState.EXECUTOR_ERROR, code, f"the engine exited with {code}")

    def cancel(self, handle: JSON) -> None:
        """SIGTERM to the whole process group; SIGKILL what is left after the grace time.

        A run that already ended keeps its final state; a pid now held by another process
        (reused) means our group is gone, so nothing is signalled."""
        workdir, pid, pgid = Path(handle["workdir"]), int(handle["pid"]), int(handle["pgid"])
        if not (workdir / EXIT_FILE).exists():
            (workdir / CANCEL_FILE).touch()
        if not _alive(pid, int(handle["started"])):
            if not _reused(pid, int(handle["started"])):
                _killpg(pgid, signal.SIGKILL)  # what the dead leader left in its group
            return
        _killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        while time.monotonic() < deadline and _alive(pid, int(handle["started"])):
            _reap(pid)
            time.sleep(0.1)
        _killpg(pgid, signal.SIGKILL)
        _reap(pid)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
