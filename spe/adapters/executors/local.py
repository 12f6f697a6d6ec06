"""The local executor: one process group per run on this machine.

The engine runs under ``runner`` in its own session (so it outlives a restart of the
server). The handle names the wrapper's pid, its start time (so a reused pid is not
mistaken for ours) and the files it writes; any process can poll or cancel from it.

A handle is read into a ``LocalHandle``; its ``process`` is a ``ProcessRef``, which cannot
name a pid or process group of 1 or less (``killpg(0)`` would signal the caller's own
group, ``kill(-1)`` every process it may signal), or None when the engine has already ended
and only its exit-status file is left.

It is an ``EndNotifier``: a daemon thread per running engine waits on a pidfd of the runner
(which exits right after it has written the exit status), then calls the callback, so the
end of a run is noticed at once. Runs re-attached after a restart are watched from their
first poll. Where pidfds are missing (not Linux, kernel < 5.3) nothing is watched and the
reconcile tick notices the end, as before."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spe.adapters.executors.handles import read_exit_code, read_handle, write_handle
from spe.domain.jobdir import JobDir
from spe.domain.models import JSON
from spe.domain.ports import ExecutionSpec, ExecutionStatus
from spe.domain.states import RunState

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessRef:
    """A live (or once live) process group leader: its pid, its group and its start time in
    clock ticks. Never a pid or pgid of 1 or less: constructing one raises ``ValueError``."""

    pid: int
    pgid: int
    started: int

    def __post_init__(self) -> None:
        if self.pid <= 1 or self.pgid <= 1:
            raise ValueError(f"not a process group of ours: pid {self.pid}, pgid {self.pgid}")


@dataclass(frozen=True)
class LocalHandle:
    """What the local executor keeps of one run: its work dir, and the process that runs
    its engine, or None when the engine has ended (its state is in the exit-status file)."""

    workdir: Path
    process: ProcessRef | None

    @classmethod
    def from_json(cls, handle: JSON) -> LocalHandle:
        """Reads a stored handle. One that names no usable process (older handles said
        pid 0 for "ended") has ``process`` None, so nothing is ever signalled from it."""
        try:
            process: ProcessRef | None = ProcessRef(int(handle["pid"]), int(handle["pgid"]),
                                                    int(handle["started"]))
        except (KeyError, TypeError, ValueError):
            process = None
        return cls(Path(handle["workdir"]), process)

    def to_json(self, executor: str) -> JSON:
        ref = self.process
        where: JSON = {"executor": executor, "workdir": str(self.workdir)}
        return where if ref is None else {**where, "pid": ref.pid, "pgid": ref.pgid,
                                          "started": ref.started}


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
    tmp = JobDir(spec.workdir).tmp
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
        self._on_end: Callable[[], None] | None = None
        self._watched: set[int] = set()
        self._lock = threading.Lock()

    def notify_ends(self, callback: Callable[[], None]) -> None:
        self._on_end = callback

    def _watch(self, pid: int) -> None:
        """Call the end callback when ``pid`` (a runner) exits; once per pid."""
        if self._on_end is None or not hasattr(os, "pidfd_open"):
            return
        with self._lock:
            if pid in self._watched:
                return
            self._watched.add(pid)
        threading.Thread(target=self._wait_end, args=(pid,), name=f"spe-end-{pid}",
                         daemon=True).start()

    def _wait_end(self, pid: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone already, or no pidfd here: the tick notices the end
            fd = -1
        try:
            if fd >= 0:
                select.select([fd], [], [])  # readable once the process has exited
        finally:
            if fd >= 0:
                os.close(fd)
            with self._lock:
                self._watched.discard(pid)
        callback = self._on_end
        if callback is not None:
            try:
                callback()
            except Exception:  # the tick still notices the end
                _log.exception("the end callback for runner %s failed", pid)

    def submit(self, spec: ExecutionSpec) -> JSON:
        spec.workdir.mkdir(parents=True, exist_ok=True)
        exit_file = JobDir(spec.workdir).exit_status
        argv = [sys.executable, "-m", "spe.adapters.executors.runner", str(exit_file), "--",
                *spec.argv]
        with spec.stdout.open("ab") as out, spec.stderr.open("ab") as err:
            proc = subprocess.Popen(argv, cwd=spec.workdir, env=_base_env(spec), stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
        stat = _proc_stat(proc.pid)
        ref = ProcessRef(proc.pid, proc.pid, stat[1] if stat else 0)
        handle = LocalHandle(spec.workdir, ref).to_json(self.name)
        write_handle(spec.workdir, handle)
        self._watch(proc.pid)
        return handle

    def find(self, run_id: str, workdir: Path) -> JSON | None:
        """The recorded handle, else a live runner whose argv names this run's exit file,
        else (when the run already ended) a handle that only reads its exit status."""
        handle = read_handle(workdir)
        if handle is not None:
            return handle
        exit_file = JobDir(workdir).exit_status
        marker = f"spe.adapters.executors.runner\0{exit_file}\0".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError):
                if marker in (proc / "cmdline").read_bytes():
                    pid = int(proc.name)
                    stat = _proc_stat(pid)
                    ref = ProcessRef(pid, os.getpgid(pid), stat[1] if stat else 0)
                    return LocalHandle(workdir, ref).to_json(self.name)
        if JobDir(workdir).exit_status.exists():  # ended: no process to name
            return LocalHandle(workdir, None).to_json(self.name)
        return None

    def poll(self, handle: JSON) -> ExecutionStatus:
        h = LocalHandle.from_json(handle)
        workdir, ref = h.workdir, h.process
        if ref is not None:
            _reap(ref.pid)
        job = JobDir(workdir)
        canceled = job.cancel_requested.exists()
        if not job.exit_status.exists() and ref is not None and _alive(ref.pid, ref.started):
            self._watch(ref.pid)  # re-attached after a restart: watched from now on
            return ExecutionStatus(RunState.RUNNING)
        code = read_exit_code(workdir)
        if canceled:
            return ExecutionStatus(RunState.CANCELED, code, "canceled on request")
        if code is None:
            return ExecutionStatus(RunState.SYSTEM_ERROR, None,
                                   "the engine process vanished without an exit status")
        if code == 0:
            return ExecutionStatus(RunState.COMPLETE, 0)
        return ExecutionStatus(RunState.EXECUTOR_ERROR, code, f"the job exited with {code}")

    def cancel(self, handle: JSON) -> None:
        """SIGTERM to the whole process group; SIGKILL what is left after the grace time.

        A run that already ended keeps its final state; a handle that names no process (the
        engine ended before it was recorded) and a pid now held by another process (reused)
        mean our group is gone, so nothing is signalled."""
        h = LocalHandle.from_json(handle)
        job = JobDir(h.workdir)
        if not job.exit_status.exists():
            job.cancel_requested.touch()
        ref = h.process
        if ref is None:
            return
        if not _alive(ref.pid, ref.started):
            if not _reused(ref.pid, ref.started):
                _killpg(ref, signal.SIGKILL)  # what the dead leader left in its group
            return
        _killpg(ref, signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        while time.monotonic() < deadline and _alive(ref.pid, ref.started):
            _reap(ref.pid)
            time.sleep(0.1)
        _killpg(ref, signal.SIGKILL)
        _reap(ref.pid)


def _killpg(ref: ProcessRef, sig: signal.Signals) -> None:
    """Signal ``ref``'s group; a ``ProcessRef`` never names group 0, 1 or our own."""
    if ref.pgid == os.getpgrp():
        raise ValueError(f"refusing to signal this service's own process group {ref.pgid}")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(ref.pgid, sig)
