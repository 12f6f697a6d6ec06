"""The driver of a TES task, run inside its job (``python3 task_driver.py plan.json``, in
the job's directory): the executors in order, each under the container runtime.

It imports nothing but the standard library, so that any Python 3 on a compute node runs
it (the service's own venv need not be there). It reads only the plan the service wrote
(every path in it comes from ``spe.domain.jobdir``); no value of the task passes through a
shell. For each executor it writes its streams to the plan's ``log_stdout|log_stderr``
(copied afterwards to the paths the task named) and its start, end and exit code to the
plan's ``records`` file (atomically, after each change). A path the task named is used only
when no part of it inside the task's ``tree`` is a symbolic link (an executor cannot make
the driver read or write a file of the host). It stops
at the first non-zero exit unless that executor has ``ignore_error``, and exits with the
task's code: 0, or the exit code that stopped it. SIGTERM (a cancel) is passed on."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_child: subprocess.Popen[bytes] | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()  # noqa: UP017 - any Python 3


def _save(path: str, records: list[dict[str, Any]]) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(records), encoding="utf-8")
    tmp.replace(path)


def _on_term(signum: int, _frame: object) -> None:
    if _child is not None and _child.poll() is None:
        _child.send_signal(signum)
    raise SystemExit(128 + signum)


def _unlinked(path: str, tree: str) -> bool:
    """``path`` lies in ``tree`` and no part of it below ``tree`` is a symbolic link: what
    an executor left in the tree (a link to a file of the host) is never followed."""
    rel = os.path.relpath(path, tree)
    if rel == os.curdir or rel.startswith(os.pardir):
        return False
    current = Path(tree)
    for part in Path(rel).parts:
        current = current / part
        if current.is_symlink():
            return False
    return True


def _copy(src: Path, dest: str, tree: str) -> None:
    if not dest:
        return
    if not _unlinked(dest, tree):
        sys.stderr.write(f"not copied to {dest}: a symbolic link is in the way\n")
        return
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def _stdin(path: str, tree: str) -> int:
    if not path:
        return os.open(os.devnull, os.O_RDONLY)
    if not _unlinked(path, tree):
        raise OSError(f"stdin {path}: a symbolic link is in the way")
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)


def _run(step: dict[str, Any], base_env: dict[str, str], tree: str) -> int:
    global _child  # noqa: PLW0603 - the signal handler passes SIGTERM on to it
    out, err = Path(step["log_stdout"]), Path(step["log_stderr"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(_stdin(step.get("stdin", ""), tree), "rb") as fin, \
            out.open("wb") as fout, err.open("wb") as ferr:
        _child = subprocess.Popen(step["argv"], stdin=fin, stdout=fout, stderr=ferr,
                                  env={**base_env, **step.get("env", {})})
        code = _child.wait()
    _copy(out, step.get("stdout", ""), tree)
    _copy(err, step.get("stderr", ""), tree)
    return code if code >= 0 else 128 - code


def main(plan_file: str) -> int:
    signal.signal(signal.SIGTERM, _on_term)
    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    base_env = {"PATH": plan.get("path", "/usr/local/bin:/usr/bin:/bin"),
                "USER": pwd.getpwuid(os.getuid()).pw_name, "LANG": "C.UTF-8"}
    records: list[dict[str, Any]] = []
    for i, step in enumerate(plan["executors"]):
        record = {"index": i, "start_time": _now(), "end_time": None, "exit_code": None}
        records.append(record)
        _save(plan["records"], records)
        try:
            code = _run(step, base_env, plan["tree"])
        except OSError as exc:  # the runtime could not start, or stdin is not a file
            sys.stderr.write(f"executor {i} could not start: {exc}\n")
            code = 127
        record.update(end_time=_now(), exit_code=code)
        _save(plan["records"], records)
        if code != 0 and not step.get("ignore_error"):
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
