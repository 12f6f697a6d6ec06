"""The wrapper the local executor starts: runs the engine, then writes its exit status
atomically to a file, so that any later process (a restarted server) learns the true
outcome. Usage: ``python -m spe.adapters.executors.runner EXIT_FILE -- ARGV...``"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType


def write_exit_status(path: Path, code: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{code}\n", encoding="ascii")
    tmp.replace(path)


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: runner EXIT_FILE -- ARGV...\n")
        return 2
    exit_file, argv = Path(args[0]), args[2:]
    try:
        child = subprocess.Popen(argv)  # argv list, no shell
    except OSError as exc:
        sys.stderr.write(f"spe runner: cannot start {argv[0]}: {exc}\n")
        write_exit_status(exit_file, 127)
        return 127

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    code = 128 - code if code < 0 else code  # killed by a signal: 128 + signal number
    write_exit_status(exit_file, code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
