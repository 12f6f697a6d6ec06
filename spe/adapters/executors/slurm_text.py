"""What SLURM's command-line tools print, parsed; and SLURM job states as WES states.

Pure functions only, tested on captured output of Slurm 22.05 to 24.11. We read the
``--parsable`` / ``-o`` / ``-P`` text forms: in 22.05 ``squeue --json`` ignores ``-j`` and
``sacct --json`` reports a job that exited 2 as ``SUCCESS 0``, while the text forms have
stayed the same across versions."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from spe.domain.states import RunState

log = logging.getLogger(__name__)
S = RunState

_JOB_ID = re.compile(r"^(\d+)(?:;[\w.-]+)?$")


def parse_sbatch(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` ("1234" or "1234;cluster").

    ``ValueError`` for anything else: a submission whose id we cannot read must not be
    taken for a success."""
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("sbatch printed no job id")
    m = _JOB_ID.match(lines[-1])
    if m is None:
        raise ValueError(f"sbatch printed no job id: {lines[-1][:200]!r}")
    return m.group(1)


# SLURM job state -> (WES state, what to tell the user). A literal table: every state of
# `man squeue` (JOB STATE CODES). Non-final states map to QUEUED / RUNNING / PAUSED.
STATE_TABLE: dict[str, tuple[RunState, str]] = {
    "PENDING": (S.QUEUED, "waiting for resources"),
    "CONFIGURING": (S.QUEUED, "its node is being configured (or powered on)"),
    "REQUEUED": (S.QUEUED, "requeued"),
    "REQUEUE_HOLD": (S.QUEUED, "requeued and held"),
    "REQUEUE_FED": (S.QUEUED, "requeued by the federation"),
    "RESV_DEL_HOLD": (S.QUEUED, "held after its reservation was deleted"),
    "RUNNING": (S.RUNNING, ""),
    "COMPLETING": (S.RUNNING, "completing"),
    "RESIZING": (S.RUNNING, "resizing"),
    "SIGNALING": (S.RUNNING, "being signalled"),
    "STAGE_OUT": (S.RUNNING, "staging out"),
    "SUSPENDED": (S.PAUSED, "suspended by the scheduler"),
    "STOPPED": (S.PAUSED, "stopped by the scheduler"),
    "COMPLETED": (S.COMPLETE, ""),
    "FAILED": (S.EXECUTOR_ERROR, "the job failed"),
    "CANCELLED": (S.CANCELED, "the job was cancelled"),
    "TIMEOUT": (S.EXECUTOR_ERROR, "the job reached its time limit (TIMEOUT)"),
    "OUT_OF_MEMORY": (S.EXECUTOR_ERROR, "the job exceeded its memory (OUT_OF_MEMORY)"),
    "DEADLINE": (S.SYSTEM_ERROR, "the job could not finish before its deadline (DEADLINE)"),
    "NODE_FAIL": (S.SYSTEM_ERROR, "the node running the job failed (NODE_FAIL)"),
    "BOOT_FAIL": (S.SYSTEM_ERROR, "the job's node failed to boot (BOOT_FAIL)"),
    "LAUNCH_FAILED": (S.SYSTEM_ERROR, "the job could not be launched (LAUNCH_FAILED)"),
    "PREEMPTED": (S.PREEMPTED, "the job was preempted (PREEMPTED)"),
    "REVOKED": (S.SYSTEM_ERROR, "the job was revoked by the federation (REVOKED)"),
    "SPECIAL_EXIT": (S.EXECUTOR_ERROR, "the job ended in a special state (SPECIAL_EXIT)"),
}


def wes_state(slurm_state: str) -> tuple[RunState, str]:
    """The WES state of a SLURM state ("CANCELLED by 1000" and "COMPLETING+" included);
    an unknown state is SYSTEM_ERROR, and logged."""
    name = re.split(r"[\s+]", slurm_state.strip(), maxsplit=1)[0].upper()
    if name in STATE_TABLE:
        return STATE_TABLE[name]
    log.error("unknown SLURM job state %r; reporting SYSTEM_ERROR", slurm_state[:100])
    return S.SYSTEM_ERROR, f"unknown SLURM job state {name[:40]!r}"


@dataclass(frozen=True)
class JobInfo:
    """One job as the controller or accounting reports it."""

    job_id: str
    state: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""


def _exit(value: str) -> tuple[int | None, int | None]:
    code, _, sig = value.partition(":")
    try:
        return int(code), int(sig or 0)
    except ValueError:
        return None, None


_FIELD = re.compile(r"(?:^|\s)(\w+)=(\S*)")


def parse_scontrol_job(text: str) -> JobInfo | None:
    """``scontrol show job -o ID``: one line of Key=Value pairs (values with spaces, such
    as Command, come last and are not needed). None when there is no JobState."""
    for line in text.splitlines():
        fields = dict(_FIELD.findall(line))
        if "JobId" in fields and "JobState" in fields:
            code, sig = _exit(fields.get("ExitCode", ""))
            return JobInfo(fields["JobId"], fields["JobState"], code, sig,
                           fields.get("Reason", ""))
    return None


def parse_sacct(text: str, job_id: str) -> JobInfo | None:
    """``sacct -n -P -X -o JobID,State,ExitCode -j ID`` (also with ``-c`` on a jobcomp
    file): the line of the job itself, not of its steps."""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0] == job_id:
            code, sig = _exit(parts[2])
            return JobInfo(job_id, parts[1], code, sig)
    return None


def parse_squeue_states(text: str) -> list[tuple[str, str]]:
    """``squeue -h -t all -o %i|%T``: (job id, state) per line; array and het-job
    components ("12_3", "12+1") are skipped: we submit neither."""
    jobs = []
    for line in text.splitlines():
        job_id, sep, state = line.strip().partition("|")
        if sep and job_id.isdigit() and state:
            jobs.append((job_id, state))
    return jobs


def parse_squeue_workdirs(text: str) -> list[tuple[str, str]]:
    """``squeue -h -o %i|%Z``: (job id, working directory) per line."""
    jobs = []
    for line in text.splitlines():
        job_id, sep, workdir = line.strip().partition("|")
        if sep and job_id.isdigit():
            jobs.append((job_id, workdir))
    return jobs


def format_minutes(minutes: int) -> str:
    """``--time`` for sbatch: D-HH:MM:00."""
    days, rest = divmod(max(1, minutes), 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"
