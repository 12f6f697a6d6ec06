"""The SLURM executor: one batch job per run (the engine's head process), submitted with
``sbatch`` as the researcher, polled with ``scontrol`` (and ``sacct`` where accounting
exists), cancelled with ``scancel`` together with every job it spawned.

We drive SLURM's command-line tools with argv lists: their text output is the interface
that stays stable across the Slurm versions BiBiGrid ships (22.05 to 24.11), whereas
pyslurm only builds against one Slurm release and slurmrestd's paths and auth change
between versions (docs/operators.md#talking-to-slurm).

Nothing a user typed reaches a shell: the batch script is a fixed text (``JOB_SCRIPT``);
the engine's argv and environment go into NUL-separated files it reads with ``mapfile``
and ``export``. The script writes the engine's exit status atomically into the run
directory, so the final state does not depend on accounting or on how long the
controller keeps finished jobs (BiBiGrid: 300 s)."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spe.adapters.executors import slurm_text as text
from spe.adapters.executors.exit_files import ExitFiles
from spe.adapters.executors.handles import read_exit_code, read_handle, write_handle
from spe.adapters.executors.workdir import share_with_group
from spe.domain.jobdir import RELATIVE, JobDir
from spe.domain.models import JSON
from spe.domain.ports import ExecutionSpec, ExecutionStatus, JobAccount
from spe.domain.states import RunState

log = logging.getLogger(__name__)
S = RunState

_ID, _EXIT = RELATIVE.slurm_job_id, RELATIVE.exit_status  # the job dir is its --chdir
JOB_SCRIPT = f"""#!/bin/bash
# Written by the SPE SLURM executor. It holds no value of the run: the engine's argv and
# environment are read from NUL-separated files, never parsed by a shell.
umask 0007
printf '%s\\n' "$SLURM_JOB_ID" > {_ID}.tmp && mv -f {_ID}.tmp {_ID}
while IFS= read -r -d '' kv; do export "$kv"; done < {RELATIVE.job_env}
mapfile -d '' -t argv < {RELATIVE.job_argv}
"${{argv[@]}}"
code=$?
printf '%s\\n' "$code" > {_EXIT}.tmp && mv -f {_EXIT}.tmp {_EXIT}
exit "$code"
"""

SPECIAL_FINAL = {S.CANCELED, S.PREEMPTED, S.SYSTEM_ERROR}  # states that explain a failure


class QueueSnapshot:
    """The job states of one ``squeue`` call, reused for ``seconds``; thread-safe. A failed
    call leaves it empty, so callers fall back to asking about each job."""

    def __init__(self, load: Callable[[], dict[str, str]], seconds: float) -> None:
        self._load, self._seconds = load, seconds
        self._lock = threading.Lock()
        self._states: dict[str, str] = {}
        self._at = -math.inf

    def get(self, job_id: str) -> str | None:
        with self._lock:
            if time.monotonic() - self._at > self._seconds:
                try:
                    self._states = self._load()
                except SlurmError:
                    self._states = {}
                self._at = time.monotonic()
            return self._states.get(job_id)


class SlurmError(RuntimeError):
    """A SLURM command failed; the message is safe to show (no secrets in it)."""


@dataclass
class SlurmExecutor:
    """Settings: where the binaries are, the head job's partition, whether jobs run as
    the researcher (``sudo -u``) or as the service, and whether ``sacct`` can be asked."""

    bin_dir: Path = Path("/usr/bin")
    partition: str = ""
    as_researcher: bool = True
    accounting: bool = False
    timeout: float = 30.0
    engine_path: str = ""
    env: dict[str, str] = field(default_factory=dict)
    queue_cache_seconds: float = 1.0
    name: str = "slurm"

    def __post_init__(self) -> None:
        self._queue = QueueSnapshot(self._list_queue, self.queue_cache_seconds)
        self._ends = ExitFiles()

    def notify_ends(self, callback: Callable[[], None]) -> None:
        """``EndNotifier``: a job's end is noticed by its exit-status file (``ExitFiles``),
        within a quarter of a second where the run directory shows it."""
        self._ends.notify(callback)

    def _list_queue(self) -> dict[str, str]:
        """Every job the controller holds: one ``squeue`` for all runs being polled."""
        proc = self._run([self._bin("squeue"), "-h", "-a", "-t", "all", "-o", "%i|%T"])
        return dict(text.parse_squeue_states(proc.stdout))

    # -- commands -------------------------------------------------------------------

    def _run(self, argv: list[str], account: JobAccount | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        if account is not None and self.as_researcher:
            argv = ["sudo", "-n", "-u", account.user, "--", *argv]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **self.env}
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                                  timeout=self.timeout, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmError(f"{Path(argv[0]).name} failed: {exc}") from exc
        if check and proc.returncode != 0:
            raise SlurmError(f"{Path(argv[0]).name} exited {proc.returncode}: "
                             f"{proc.stderr.strip()[:500]}")
        return proc

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    # -- Executor port --------------------------------------------------------------

    def submit(self, spec: ExecutionSpec) -> JSON:
        account = spec.account
        if account is None and self.as_researcher:
            raise SlurmError("a SLURM job needs the researcher's account (deny by default)")
        self._write_job_files(spec, account)
        proc = self._run(self._sbatch_argv(spec, account), account)
        job_id = text.parse_sbatch(proc.stdout)
        handle = {**self._handle(spec.workdir, job_id, account.user if account else "",
                                 account.group if account else ""),
                  "stderr": str(spec.stderr)}
        write_handle(spec.workdir, handle)
        self._ends.watch(JobDir(spec.workdir).exit_status)
        log.info("run %s submitted as SLURM job %s", spec.run_id, job_id)
        return handle

    def _write_job_files(self, spec: ExecutionSpec, account: JobAccount | None) -> None:
        spec.workdir.mkdir(parents=True, exist_ok=True)
        job = JobDir(spec.workdir)
        tmp = job.tmp
        tmp.mkdir(exist_ok=True)
        path = ":".join(p for p in (self.engine_path, "/usr/local/bin:/usr/bin:/bin") if p)
        env = {"PATH": path, "HOME": str(tmp), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONNOUSERSITE": "1",
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(tmp), **spec.env}
        job.job_env.write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))
        job.job_argv.write_bytes(b"".join(a.encode() + b"\0" for a in spec.argv))
        job.job_script.write_text(JOB_SCRIPT, encoding="utf-8")
        for stream in (spec.stdout, spec.stderr):
            stream.parent.mkdir(parents=True, exist_ok=True)
        if account is not None and self.as_researcher:
            share_with_group(spec.workdir, account.group)

    def _sbatch_argv(self, spec: ExecutionSpec, account: JobAccount | None) -> list[str]:
        res = spec.resources
        argv = [self._bin("sbatch"), "--parsable", f"--job-name=spe-{spec.run_id}",
                f"--chdir={spec.workdir}", f"--output={spec.stdout}", f"--error={spec.stderr}",
                "--no-requeue", "--nodes=1", "--ntasks=1",
                f"--cpus-per-task={int(res.get('cpus', 1))}",
                f"--mem={int(res.get('memory_mb', 1024))}M",
                f"--time={text.format_minutes(int(res.get('time_minutes', 60)))}"]
        partition = spec.scheduler.get("partition") or self.partition
        if partition:
            argv.append(f"--partition={partition}")
        if spec.scheduler.get("qos"):
            argv.append(f"--qos={spec.scheduler['qos']}")
        if res.get("disk_mb"):
            argv.append(f"--tmp={int(res['disk_mb'])}M")
        if account is not None and account.slurm_account:
            argv.append(f"--account={account.slurm_account}")
        return [*argv, str(JobDir(spec.workdir).job_script)]

    def _handle(self, workdir: Path, job_id: str, user: str = "", group: str = "") -> JSON:
        return {"executor": self.name, "job_id": job_id, "workdir": str(workdir),
                "user": user, "group": group, "stderr": str(JobDir(workdir).stderr),
                "label": f"SLURM job {job_id}"}

    def find(self, run_id: str, workdir: Path) -> JSON | None:
        """The recorded handle; else the job named ``spe-<run_id>`` that the controller
        still knows (a submission whose handle was never written); else, when the job
        already ran, a handle built from the job id the job script recorded."""
        handle = read_handle(workdir)
        if handle is not None:
            return handle
        proc = self._run([self._bin("squeue"), "-h", "-a", f"--name=spe-{run_id}",
                          "-o", "%i|%u"], check=True)
        for line in proc.stdout.splitlines():
            job_id, _, user = line.strip().partition("|")
            if job_id.isdigit():
                return self._handle(workdir, job_id, user)
        recorded = _read(JobDir(workdir).slurm_job_id)
        if recorded.isdigit():
            return self._handle(workdir, recorded)
        return None

    def poll(self, handle: JSON) -> ExecutionStatus:
        workdir, job_id = Path(handle["workdir"]), str(handle["job_id"])
        canceled = JobDir(workdir).cancel_requested.exists()
        code = read_exit_code(workdir)
        if code == 0 and not canceled:
            return ExecutionStatus(S.COMPLETE, 0)
        live = self._queue.get(job_id)
        if live is not None and code is None:  # the common case: no per-job command
            state, message = text.wes_state(live)
            if state in (S.QUEUED, S.RUNNING, S.PAUSED):
                self._ends.watch(JobDir(workdir).exit_status)  # re-attached: watched now
                return ExecutionStatus(state, None, message)
        try:
            info = self._job_info(job_id)
        except SlurmError as exc:
            if code is None:
                return ExecutionStatus(S.UNKNOWN, None, f"SLURM does not answer: {exc}")
            info = None
        if info is None and code is None and not canceled:
            return ExecutionStatus(S.SYSTEM_ERROR, None,
                                   f"SLURM job {job_id} vanished without an exit status")
        state, message = text.wes_state(info.state) if info else (S.UNKNOWN, "")
        if state in (S.QUEUED, S.RUNNING, S.PAUSED):
            return ExecutionStatus(state, None, message)
        return self._final(handle, info, code, canceled)

    def _final(self, handle: JSON, info: text.JobInfo | None, code: int | None,
               canceled: bool) -> ExecutionStatus:
        """The final status: the exit-status file says how the engine ended; SLURM, and
        slurmstepd's lines in the job's stderr, say why a job was stopped from outside
        (time, memory, node, cancel)."""
        if canceled:
            return ExecutionStatus(S.CANCELED, code, "canceled on request")
        if info is None:
            return _by_exit_code(code, _stderr_hint(handle))
        slurm_state, why = text.wes_state(info.state)
        if info.reason not in ("", "None", "NonZeroExitCode"):
            why = f"{why} ({info.reason})"
        if code is None:
            code = 128 + info.signal if info.signal else info.exit_code
        special = slurm_state in SPECIAL_FINAL or (
            slurm_state == S.EXECUTOR_ERROR and info.state != "FAILED")
        if special:
            return ExecutionStatus(slurm_state, code, f"SLURM job {info.job_id}: {why}"
                                   f"{_stderr_hint(handle)}")
        if slurm_state == S.COMPLETE and code == 0:
            return ExecutionStatus(S.COMPLETE, 0)
        return _by_exit_code(code or None, _stderr_hint(handle) or f"; SLURM: {why}")

    def _job_info(self, job_id: str) -> text.JobInfo | None:
        proc = self._run([self._bin("scontrol"), "show", "job", "-o", job_id], check=False)
        if proc.returncode == 0:
            return text.parse_scontrol_job(proc.stdout)
        if "Invalid job id" not in proc.stderr:
            raise SlurmError(f"scontrol exited {proc.returncode}: {proc.stderr.strip()[:300]}")
        if not self.accounting:
            return None
        proc = self._run([self._bin("sacct"), "-n", "-P", "-X", "-o", "JobID,State,ExitCode",
                          "-j", job_id])
        return text.parse_sacct(proc.stdout, job_id)

    def cancel(self, handle: JSON) -> None:
        """``scancel`` the head job, then every job still queued or running whose working
        directory lies inside the run's (the jobs the engine submitted). Idempotent."""
        workdir = Path(handle["workdir"])
        job = JobDir(workdir)
        if not job.exit_status.exists():
            job.cancel_requested.touch()
        account = JobAccount(handle.get("user") or "", handle.get("group") or "")
        as_user = account if account.user else None
        head = job_id_of(handle)
        jobs = [head, *self._spawned(workdir, head)]
        self._run([self._bin("scancel"), *jobs], as_user, check=False)

    def _spawned(self, workdir: Path, head: str) -> list[str]:
        proc = self._run([self._bin("squeue"), "-h", "-a", "-o", "%i|%Z"], check=False)
        inside = str(workdir)
        return [job for job, cwd in text.parse_squeue_workdirs(proc.stdout)
                if job != head and _positive_id(job)
                and (cwd == inside or cwd.startswith(inside + os.sep))]


def _positive_id(job_id: str) -> bool:
    return job_id.isascii() and job_id.isdigit() and int(job_id) > 0


def job_id_of(handle: JSON) -> str:
    """The head job's id: digits naming a job above 0, so that nothing else (an option, a
    whole range of jobs) ever reaches ``scancel``. ``ValueError`` otherwise."""
    job_id = str(handle.get("job_id", ""))
    if not _positive_id(job_id):
        raise ValueError(f"not a SLURM job id: {job_id[:32]!r}")
    return job_id


# What slurmstepd writes into a job's stderr when it stops the job, and what we tell users.
_STEPD_HINTS = (("xceeded job memory limit", "the job exceeded its memory limit"),
                ("exceeded memory limit", "the job exceeded its memory limit"),
                ("oom-kill", "the job exceeded its memory limit"),
                ("DUE TO TIME LIMIT", "the job reached its time limit"),
                ("DUE TO NODE FAILURE", "the node running the job failed"),
                ("DUE TO PREEMPTION", "the job was preempted"))


def _stderr_hint(handle: JSON) -> str:
    """"; <what slurmstepd said>" from the last 16 KiB of the job's stderr, or ""."""
    try:
        with Path(handle.get("stderr") or "/nonexistent").open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    hints = [hint for marker, hint in _STEPD_HINTS if marker in tail]
    return f"; {hints[0]}" if hints else ""


def _by_exit_code(code: int | None, detail: str) -> ExecutionStatus:
    if code == 0:
        return ExecutionStatus(S.COMPLETE, 0)
    if code is None:
        return ExecutionStatus(S.SYSTEM_ERROR, None,
                               f"the job ended without an exit status{detail}")
    return ExecutionStatus(S.EXECUTOR_ERROR, code, f"the job exited with {code}{detail}")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
