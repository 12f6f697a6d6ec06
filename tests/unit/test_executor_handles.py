"""The executors' handles: a local handle can never name process group 0 or 1 (``killpg(0)``
signals the caller's own group), and a handle that names no process reads its state from
the exit-status file and signals nothing; a SLURM handle hands ``scancel`` only a positive
job id."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from spe.adapters.executors.local import LocalExecutor, LocalHandle, ProcessRef, _killpg
from spe.adapters.executors.slurm import job_id_of
from spe.domain.states import RunState


@pytest.mark.parametrize(("pid", "pgid"), [(0, 0), (1, 1), (0, 4242), (4242, 0),
                                           (4242, 1), (-1, 4242), (4242, -5)])
def test_a_process_ref_cannot_name_pid_or_group_zero_one_or_below(pid: int,
                                                                  pgid: int) -> None:
    with pytest.raises(ValueError, match="not a process group of ours"):
        ProcessRef(pid, pgid, 0)


@pytest.mark.parametrize("stored", [
    {"pid": 0, "pgid": 0, "started": -1},  # what find() wrote for an ended run before
    {"pid": 1, "pgid": 1, "started": 5},
    {"pid": "x", "pgid": 12, "started": 5},
    {},
])
def test_a_stored_handle_naming_no_usable_process_has_none(stored: dict[str, object],
                                                           tmp_path: Path) -> None:
    handle = LocalHandle.from_json({"executor": "local", "workdir": str(tmp_path), **stored})
    assert handle == LocalHandle(tmp_path, None)


def test_a_handle_round_trips_through_json(tmp_path: Path) -> None:
    handle = LocalHandle(tmp_path, ProcessRef(4242, 4242, 77))
    assert LocalHandle.from_json(handle.to_json("local")) == handle
    ended = LocalHandle(tmp_path, None).to_json("local")
    assert "pid" not in ended and "pgid" not in ended


def test_find_of_an_ended_unrecorded_run_names_no_process_and_polls_its_exit_status(
        tmp_path: Path) -> None:
    (tmp_path / "exit_status").write_text("3\n")
    executor = LocalExecutor(cancel_grace_seconds=0)
    handle = executor.find("r1", tmp_path)
    assert handle is not None
    assert LocalHandle.from_json(handle).process is None
    status = executor.poll(handle)
    assert (status.state, status.exit_code) == (RunState.EXECUTOR_ERROR, 3)


@pytest.mark.parametrize("stored", [{"pid": 0, "pgid": 0, "started": -1}, {}])
def test_cancel_of_a_handle_naming_no_process_signals_nothing(
        stored: dict[str, object], tmp_path: Path) -> None:
    (tmp_path / "exit_status").write_text("0\n")
    handle = {"executor": "local", "workdir": str(tmp_path), **stored}
    LocalExecutor(cancel_grace_seconds=0).cancel(handle)  # killpg(0) would end this test run
    assert LocalExecutor().poll(handle).state == RunState.COMPLETE


def test_signalling_our_own_process_group_is_refused() -> None:
    if os.getpgrp() <= 1:
        pytest.skip("this test process runs in process group 1")
    with pytest.raises(ValueError, match="own process group"):
        _killpg(ProcessRef(os.getpid(), os.getpgrp(), 0), signal.SIGTERM)


@pytest.mark.parametrize("job_id", ["0", "-1", "", "--user=alice", "12 13", "1_2", "١٢"])
def test_a_slurm_handle_whose_job_id_is_not_a_positive_number_is_refused(job_id: str) -> None:
    with pytest.raises(ValueError, match="not a SLURM job id"):
        job_id_of({"job_id": job_id})


def test_a_slurm_handle_job_id_is_digits() -> None:
    assert job_id_of({"job_id": 1234}) == "1234"
