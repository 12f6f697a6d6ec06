"""The Executor port's contract (``spe/domain/ports.py``), run against every adapter and
every fake; then what only the local executor promises about real processes, and the fakes
that fail the way real backends do."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from spe.adapters.executors.local import LocalExecutor
from spe.adapters.executors.slurm import SlurmExecutor
from spe.adapters.policy import dev_policy
from spe.config import Settings
from spe.core import make_executor
from spe.domain.jobdir import JobDir
from spe.domain.models import JSON
from spe.domain.ports import ExecutionSpec, ExecutionStatus, Executor
from spe.domain.states import RunState, is_final
from tests.fakes import FakeExecutor, FakeProcess, NeverStartsExecutor, VanishingExecutor
from tests.slurm_cluster import slurm_or_skip

S = RunState
TIMEOUT = 20.0  # a real SLURM starts the first job after its controller starts in ~3 s
WAITING = (RunState.QUEUED, RunState.RUNNING)  # a scheduler may hold the job first
LONG = ("sleep", "30")  # outlives every test; each test cancels it


def wait_until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_running(executor: Executor, handle: JSON) -> None:
    wait_until(lambda: executor.poll(handle).state == RunState.RUNNING, f"{handle} to run")


def wait_final(executor: Executor, handle: JSON, timeout: float = TIMEOUT) -> ExecutionStatus:
    statuses: list[ExecutionStatus] = []

    def ended() -> bool:
        statuses.append(executor.poll(handle))
        return is_final(statuses[-1].state)

    wait_until(ended, f"a final state of {handle}", timeout)
    return statuses[-1]


@dataclass
class Rig:
    """One executor under test: how to build a fresh instance of it (as after a restart),
    where its runs live, and the handles to cancel at teardown."""

    make: Callable[[], Executor]
    root: Path
    handles: list[JSON] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def spec(self, *argv: str) -> ExecutionSpec:
        run_id = f"run{next(self._ids)}"
        return ExecutionSpec(run_id=run_id, argv=argv, workdir=self.root / run_id,
                             stdout=self.root / f"{run_id}.stdout",
                             stderr=self.root / f"{run_id}.stderr")

    def submit(self, *argv: str) -> tuple[Executor, JSON]:
        executor = self.make()
        handle = executor.submit(self.spec(*argv))
        self.handles.append(handle)
        return executor, handle


def site_executor(name: str) -> Callable[[], Executor]:
    """An executor a site installed (an entry point of ``spe.executors``), built the way
    the service builds it (``spe.core.make_executor``)."""
    settings = Settings(executor=name)
    return lambda: make_executor(settings, dev_policy()).executor


@pytest.fixture(params=["local", "fake", "slurm", "toy"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    make: Callable[[], Executor]
    if request.param == "local":
        make = partial(LocalExecutor, cancel_grace_seconds=2.0)
    elif request.param == "slurm":
        slurm_or_skip()
        make = partial(SlurmExecutor, as_researcher=False)
    elif request.param == "toy":  # installed like a site's package, found by entry point
        request.getfixturevalue("toy_plugin").clear()
        make = site_executor("toy")
    else:
        registry: dict[str, FakeProcess] = {}
        make = partial(FakeExecutor, registry)
    the_rig = Rig(make, tmp_path)
    yield the_rig
    for handle in the_rig.handles:
        make().cancel(handle)


# ---- the contract, for every executor ----------------------------------------------------

def test_find_returns_the_earlier_submission_of_a_run_and_none_for_a_new_one(
        rig: Rig) -> None:
    executor = rig.make()
    spec = rig.spec(*LONG)
    assert executor.find(spec.run_id, spec.workdir) is None
    handle = executor.submit(spec)
    rig.handles.append(handle)
    found = rig.make().find(spec.run_id, spec.workdir)
    assert found is not None
    assert rig.make().poll(found).state in WAITING
    rig.make().cancel(found)
    assert wait_final(rig.make(), handle).state == S.CANCELED


def test_handle_is_json_and_a_new_executor_instance_reattaches_to_it(rig: Rig) -> None:
    _, handle = rig.submit("sh", "-c", "sleep 1; exit 3")
    revived = json.loads(json.dumps(handle))
    assert revived == handle
    restarted = rig.make()
    assert restarted.poll(revived).state in WAITING
    status = wait_final(rig.make(), revived)
    assert (status.state, status.exit_code) == (S.EXECUTOR_ERROR, 3)


def test_exit_zero_completes_with_exit_code_zero(rig: Rig) -> None:
    executor, handle = rig.submit("true")
    status = wait_final(executor, handle)
    assert (status.state, status.exit_code) == (S.COMPLETE, 0)


def test_nonzero_exit_is_an_executor_error_with_that_exit_code(rig: Rig) -> None:
    executor, handle = rig.submit("sh", "-c", "exit 3")
    status = wait_final(executor, handle)
    assert (status.state, status.exit_code) == (S.EXECUTOR_ERROR, 3)


@pytest.mark.parametrize("argv", [("true",), ("sh", "-c", "exit 3")])
def test_polling_a_finished_handle_again_gives_the_same_answer(
        rig: Rig, argv: tuple[str, ...]) -> None:
    executor, handle = rig.submit(*argv)
    first = wait_final(executor, handle)
    assert executor.poll(handle) == first
    assert rig.make().poll(handle) == first


def test_submit_returns_before_the_work_ends_and_poll_reports_running(rig: Rig) -> None:
    started = time.monotonic()
    executor, handle = rig.submit(*LONG)
    assert time.monotonic() - started < 5
    assert executor.poll(handle).state in WAITING
    wait_running(executor, handle)
    assert executor.poll(handle).state == S.RUNNING


def test_cancel_stops_the_work_and_a_later_poll_reports_canceled(rig: Rig) -> None:
    executor, handle = rig.submit(*LONG)
    wait_running(executor, handle)
    executor.cancel(handle)
    assert wait_final(executor, handle, timeout=10).state == S.CANCELED
    assert rig.make().poll(handle).state == S.CANCELED


def test_cancel_twice_is_harmless_and_still_reports_canceled(rig: Rig) -> None:
    executor, handle = rig.submit(*LONG)
    executor.cancel(handle)
    rig.make().cancel(handle)
    assert executor.poll(handle).state == S.CANCELED
    assert executor.poll(handle).state == S.CANCELED


def test_cancel_after_the_end_is_harmless_and_keeps_the_final_state(rig: Rig) -> None:
    executor, handle = rig.submit("true")
    ended = wait_final(executor, handle)
    executor.cancel(handle)
    executor.cancel(handle)
    assert executor.poll(handle) == ended
    assert ended.state == S.COMPLETE


def test_process_output_lands_in_the_spec_stdout_and_stderr_files(rig: Rig) -> None:
    spec = rig.spec("sh", "-c", "echo to-stdout; echo to-stderr >&2")
    executor = rig.make()
    handle = executor.submit(spec)
    rig.handles.append(handle)
    assert wait_final(executor, handle).state == S.COMPLETE
    out, err = spec.stdout.read_text(), spec.stderr.read_text()
    assert "to-stdout" in out
    assert "to-stderr" in err
    assert "to-stderr" not in out
    assert "to-stdout" not in err


# ---- the local executor on real processes ------------------------------------------------

def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, process group, start time in ticks) of a pid, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2]), int(fields[19])


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of one process group."""
    members = []
    for entry in Path("/proc").iterdir():
        stat = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] not in ("Z", "X") and stat[1] == pgid:
            members.append(int(entry.name))
    return members


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Rig]:
    the_rig = Rig(partial(LocalExecutor, cancel_grace_seconds=1.0), tmp_path)
    yield the_rig
    for handle in the_rig.handles:
        LocalExecutor(cancel_grace_seconds=1.0).cancel(handle)


def test_local_cancel_kills_the_whole_process_group_including_grandchildren(
        local: Rig) -> None:
    executor, handle = local.submit("sh", "-c", "sleep 300 & sleep 300 & wait")
    pgid = int(handle["pgid"])
    # runner, sh and its two background sleeps
    wait_until(lambda: len(group_members(pgid)) >= 4, "the grandchildren to start")
    executor.cancel(handle)
    wait_until(lambda: not group_members(pgid), "the group to die", timeout=5)
    assert executor.poll(handle).state == S.CANCELED


def test_local_cancel_sigkills_a_child_that_ignores_sigterm_after_the_grace(
        local: Rig) -> None:
    spec = local.spec("python3", "-c", "import signal,time; "
                      "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                      "print('ready', flush=True); time.sleep(300)")
    executor = local.make()
    handle = executor.submit(spec)
    local.handles.append(handle)
    wait_until(lambda: "ready" in spec.stdout.read_text(), "SIGTERM to be ignored")
    started = time.monotonic()
    executor.cancel(handle)
    took = time.monotonic() - started
    assert 0.9 <= took < 5, "cancel waits out the grace, then kills"
    wait_until(lambda: not group_members(int(handle["pgid"])), "the group to die", 5)
    assert executor.poll(handle).state == S.CANCELED


def test_local_handle_whose_pid_was_reused_is_not_running_and_cancel_spares_that_process(
        tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                             start_new_session=True)
    try:
        stat = proc_stat(other.pid)
        assert stat is not None
        forged: JSON = {"executor": "local", "pid": other.pid, "pgid": other.pid,
                        "started": stat[2] + 12345, "workdir": str(tmp_path)}
        executor = LocalExecutor(cancel_grace_seconds=1.0)
        assert executor.poll(forged).state == S.SYSTEM_ERROR
        executor.cancel(forged)
        time.sleep(0.2)
        assert other.poll() is None, "cancel killed a process that is not ours"
    finally:
        other.kill()
        other.wait(timeout=5)


def test_local_runner_killed_without_exit_status_reports_system_error(local: Rig) -> None:
    executor, handle = local.submit(*LONG)
    os.kill(int(handle["pid"]), signal.SIGKILL)  # the wrapper only, as the OOM killer would
    status = wait_final(executor, handle, timeout=5)
    assert (status.state, status.exit_code) == (S.SYSTEM_ERROR, None)
    assert executor.poll(handle) == status


def test_local_runner_writes_the_exit_status_atomically(local: Rig) -> None:
    spec = local.spec("sh", "-c", "exit 5")
    executor = local.make()
    handle = executor.submit(spec)
    local.handles.append(handle)
    assert wait_final(executor, handle).exit_code == 5
    assert JobDir(spec.workdir).exit_status.read_text() == "5\n"
    assert not list(spec.workdir.glob("*.tmp"))


SUBMIT_AND_EXIT = """\
import json, sys
from pathlib import Path
from spe.adapters.executors.local import LocalExecutor
from spe.domain.ports import ExecutionSpec
workdir = Path(sys.argv[1])
spec = ExecutionSpec(run_id="orphan", argv=("sleep", "1"), workdir=workdir,
                     stdout=workdir.parent / "orphan.stdout",
                     stderr=workdir.parent / "orphan.stderr")
print(json.dumps(LocalExecutor().submit(spec)))
"""


def test_local_work_survives_the_death_of_the_process_that_submitted_it(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SUBMIT_AND_EXIT, str(tmp_path / "orphan")],
                          capture_output=True, text=True, timeout=30, check=True)
    handle = json.loads(done.stdout)
    executor = LocalExecutor(cancel_grace_seconds=1.0)
    try:
        assert executor.poll(handle).state == S.RUNNING
        status = wait_final(executor, handle)
        assert (status.state, status.exit_code) == (S.COMPLETE, 0)
    finally:
        executor.cancel(handle)


def test_local_find_recovers_a_live_run_whose_handle_was_never_recorded(local: Rig) -> None:
    executor = local.make()
    spec = local.spec(*LONG)
    handle = executor.submit(spec)
    local.handles.append(handle)
    (spec.workdir / "handle.json").unlink()  # as if the submitter died before writing it
    found = local.make().find(spec.run_id, spec.workdir)
    assert found is not None and found["pid"] == handle["pid"]
    local.make().cancel(found)
    assert wait_final(local.make(), handle).state == S.CANCELED


def test_local_missing_program_is_an_executor_error_with_exit_code_127(local: Rig) -> None:
    executor, handle = local.submit("spe-test-no-such-program")
    status = wait_final(executor, handle)
    assert (status.state, status.exit_code) == (S.EXECUTOR_ERROR, 127)


# ---- fakes that fail the way real backends do ------------------------------------------

def test_never_starts_executor_raises_oserror_on_submit(tmp_path: Path) -> None:
    rig = Rig(NeverStartsExecutor, tmp_path)
    with pytest.raises(OSError, match="cannot start"):
        rig.submit("true")


def test_vanishing_executor_reports_system_error_without_exit_code(tmp_path: Path) -> None:
    rig = Rig(VanishingExecutor, tmp_path)
    executor, handle = rig.submit(*LONG)
    assert json.loads(json.dumps(handle)) == handle
    status = executor.poll(handle)
    assert (status.state, status.exit_code) == (S.SYSTEM_ERROR, None)
    executor.cancel(handle)
    assert executor.poll(handle) == status
