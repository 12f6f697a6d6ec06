"""What SLURM's tools print, parsed (captured from Slurm 22.05.8 on Debian 12)."""

from __future__ import annotations

import logging

import pytest

from spe.adapters.executors import slurm_text as text
from spe.domain.states import RunState

S = RunState

SCONTROL_FAILED = (
    "JobId=1 JobName=j.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 "
    "Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode "
    "Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=2:0 "
    "RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A NodeList=vm BatchHost=vm "
    "Command=/tmp/j.sh WorkDir=/srv/spe/work StdErr=/tmp/j.out StdIn=/dev/null Power= \n")


@pytest.mark.parametrize(("out", "job"), [("1234\n", "1234"), ("77;spe-test\n", "77"),
                                          ("sbatch: warning: x\n12\n", "12")])
def test_sbatch_parsable_output_gives_the_job_id(out: str, job: str) -> None:
    assert text.parse_sbatch(out) == job


@pytest.mark.parametrize("out", ["", "\n", "Submitted batch job 12\n", "12a\n", "-1\n"])
def test_sbatch_output_without_a_job_id_is_an_error(out: str) -> None:
    with pytest.raises(ValueError, match="no job id"):
        text.parse_sbatch(out)


def test_scontrol_one_line_record_gives_state_exit_code_and_reason() -> None:
    info = text.parse_scontrol_job(SCONTROL_FAILED)
    assert info == text.JobInfo("1", "FAILED", 2, 0, "NonZeroExitCode")


def test_scontrol_record_of_a_job_killed_by_a_signal() -> None:
    info = text.parse_scontrol_job("JobId=9 JobState=CANCELLED Reason=None ExitCode=0:15")
    assert info is not None and (info.exit_code, info.signal) == (0, 15)


def test_scontrol_without_a_job_state_is_none() -> None:
    assert text.parse_scontrol_job("slurm_load_jobs error: Invalid job id specified") is None


def test_sacct_takes_the_job_line_not_its_steps() -> None:
    out = "5.batch|COMPLETED|0:0\n5|TIMEOUT|0:15\n"
    assert text.parse_sacct(out, "5") == text.JobInfo("5", "TIMEOUT", 0, 15)
    assert text.parse_sacct(out, "6") is None


def test_squeue_workdirs() -> None:
    out = "12|/runs/a\n13|/runs/a/work\nbad line\n"
    assert text.parse_squeue_workdirs(out) == [("12", "/runs/a"), ("13", "/runs/a/work")]


# The literal table the issue asks for: every listed state and what WES state it becomes.
@pytest.mark.parametrize(("slurm", "wes"), [
    ("PENDING", S.QUEUED), ("CONFIGURING", S.QUEUED), ("RUNNING", S.RUNNING),
    ("COMPLETING", S.RUNNING), ("COMPLETED", S.COMPLETE), ("FAILED", S.EXECUTOR_ERROR),
    ("CANCELLED", S.CANCELED), ("TIMEOUT", S.EXECUTOR_ERROR), ("NODE_FAIL", S.SYSTEM_ERROR),
    ("PREEMPTED", S.PREEMPTED), ("OUT_OF_MEMORY", S.EXECUTOR_ERROR),
    ("BOOT_FAIL", S.SYSTEM_ERROR), ("DEADLINE", S.SYSTEM_ERROR), ("SUSPENDED", S.PAUSED),
    ("CANCELLED by 1000", S.CANCELED), ("COMPLETING+", S.RUNNING),
])
def test_slurm_states_map_to_wes_states(slurm: str, wes: RunState) -> None:
    assert text.wes_state(slurm)[0] == wes


def test_an_unknown_state_is_a_system_error_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        state, message = text.wes_state("WARP_DRIVE")
    assert state == S.SYSTEM_ERROR
    assert "WARP_DRIVE" in message
    assert "unknown SLURM job state" in caplog.text


def test_messages_name_the_limit_that_ended_a_job() -> None:
    assert "time limit" in text.wes_state("TIMEOUT")[1]
    assert "memory" in text.wes_state("OUT_OF_MEMORY")[1]
    assert "node" in text.wes_state("NODE_FAIL")[1]


@pytest.mark.parametrize(("minutes", "out"), [(1, "0-00:01:00"), (90, "0-01:30:00"),
                                              (1500, "1-01:00:00"), (0, "0-00:01:00")])
def test_time_limit_format(minutes: int, out: str) -> None:
    assert text.format_minutes(minutes) == out


def test_squeue_states_skip_array_and_het_components() -> None:
    out = "12|RUNNING\n13|PENDING\n14_2|RUNNING\n15+1|RUNNING\n\n"
    assert text.parse_squeue_states(out) == [("12", "RUNNING"), ("13", "PENDING")]


def test_queue_snapshot_is_reused_then_refreshed_and_empty_after_a_failure() -> None:
    from spe.adapters.executors.slurm import QueueSnapshot, SlurmError

    calls: list[int] = []

    def load() -> dict[str, str]:
        calls.append(1)
        if len(calls) == 2:
            raise SlurmError("controller away")
        return {"1": "RUNNING"}

    snap = QueueSnapshot(load, seconds=60)
    assert snap.get("1") == "RUNNING"
    assert snap.get("2") is None
    assert len(calls) == 1  # one squeue for many polls
    snap = QueueSnapshot(load, seconds=0)
    assert snap.get("1") is None  # the failed call: callers ask per job instead
    assert snap.get("1") == "RUNNING"
