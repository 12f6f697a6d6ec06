"""The local executor's wrapper: how ``runner.main`` turns the child's end into an exit
status (returned and written to the exit file)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spe.adapters.executors.runner import main, write_exit_status

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    """``main`` installs forwarding handlers meant for its own process; undo them here."""
    saved = {sig: signal.getsignal(sig) for sig in FORWARDED}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_child_killed_by_a_signal_exits_with_128_plus_the_signal_number(
        tmp_path: Path, sig: signal.Signals) -> None:
    exit_file = tmp_path / "exit_status"
    suicide = f"import os; os.kill(os.getpid(), {int(sig)})"
    assert main([str(exit_file), "--", sys.executable, "-c", suicide]) == 128 + sig
    assert exit_file.read_text() == f"{128 + sig}\n"


def test_the_child_exit_code_is_passed_through(tmp_path: Path) -> None:
    exit_file = tmp_path / "exit_status"
    assert main([str(exit_file), "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert exit_file.read_text() == "3\n"


def test_a_program_that_cannot_start_exits_127(tmp_path: Path) -> None:
    exit_file = tmp_path / "exit_status"
    assert main([str(exit_file), "--", str(tmp_path / "no-such-program")]) == 127
    assert exit_file.read_text() == "127\n"


@pytest.mark.parametrize("tail", [[], ["--"], ["true"], ["not-the-separator", "true"]])
def test_a_usage_error_exits_2_and_writes_no_exit_status(
        tmp_path: Path, tail: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    exit_file = tmp_path / "exit_status"
    assert main([str(exit_file), *tail]) == 2
    assert "usage" in capsys.readouterr().err
    assert not exit_file.exists()


def test_usage_error_without_any_argument_exits_2() -> None:
    assert main([]) == 2


def test_writing_the_exit_status_replaces_the_file_and_leaves_no_temporary(
        tmp_path: Path) -> None:
    exit_file = tmp_path / "exit_status"
    write_exit_status(exit_file, 1)
    write_exit_status(exit_file, 0)
    assert exit_file.read_text() == "0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["exit_status"]
