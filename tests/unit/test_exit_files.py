"""``ExitFiles``: an end callback soon after an exit-status file appears, once per file,
and nothing for files watched before a callback was set."""

from __future__ import annotations

import threading
from pathlib import Path

from spe.adapters.executors.exit_files import ExitFiles


def test_the_callback_follows_each_exit_file_once(tmp_path: Path) -> None:
    called = threading.Semaphore(0)
    files = ExitFiles(interval=0.02)
    files.watch(tmp_path / "before")  # no callback yet: not watched
    files.notify(called.release)
    first, second = tmp_path / "a" / "exit_status", tmp_path / "b" / "exit_status"
    files.watch(first)
    files.watch(second)
    (tmp_path / "before").touch()
    assert not called.acquire(timeout=0.2)
    first.parent.mkdir()
    first.write_text("0\n")
    assert called.acquire(timeout=5)
    assert not called.acquire(timeout=0.2)  # once for that file
    second.parent.mkdir()
    second.write_text("1\n")
    assert called.acquire(timeout=5)


def test_a_failing_callback_does_not_stop_the_watch(tmp_path: Path) -> None:
    calls: list[int] = []
    first, done = threading.Event(), threading.Event()

    def callback() -> None:
        calls.append(1)
        if len(calls) == 1:
            first.set()
            raise RuntimeError("the reconciler is gone")
        done.set()

    files = ExitFiles(interval=0.02)
    files.notify(callback)
    for name in ("x", "y"):
        files.watch(tmp_path / name)
    (tmp_path / "x").touch()
    assert first.wait(5)
    (tmp_path / "y").touch()
    assert done.wait(5)
