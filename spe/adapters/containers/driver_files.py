"""The ``TaskDriver`` port on a local or shared POSIX filesystem: installs the task
driver (``task_driver.py``) and its plan in a job, reads back its records, and finds a
task's outputs in its container tree without ever following a link out of it."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from spe.adapters.containers import task_driver
from spe.domain.jobdir import JobDir
from spe.domain.models import JSON
from spe.domain.task_ports import Bind, ExecutorRecord, Found

MAX_RECORDS, MAX_FOUND = 100, 10_000


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _record(raw: object, index: int) -> ExecutorRecord | None:
    if not isinstance(raw, dict) or raw.get("index") != index:
        return None
    code = raw.get("exit_code")
    return ExecutorRecord(index=index, start_time=_time(raw.get("start_time")),
                          end_time=_time(raw.get("end_time")),
                          exit_code=code if isinstance(code, int)
                          and not isinstance(code, bool) and -1 < code < 512 else None)


class LocalTaskDriver:
    """``python`` runs the driver in the job (any Python 3: Debian's on a compute node)."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    def install(self, job: JobDir, plan: JSON) -> tuple[str, ...]:
        job.logs.mkdir(parents=True, exist_ok=True)
        steps = [{**step, "log_stdout": str(job.executor_stream(i, "stdout")),
                  "log_stderr": str(job.executor_stream(i, "stderr"))}
                 for i, step in enumerate(plan["executors"])]
        plan = {**plan, "executors": steps, "records": str(job.executor_records),
                "tree": str(job.work)}
        job.task_plan.write_text(json.dumps(plan), encoding="utf-8")
        job.task_driver.write_bytes(Path(task_driver.__file__).read_bytes())
        return (self.python, "-I", str(job.task_driver), str(job.task_plan))

    def records(self, job: JobDir) -> list[ExecutorRecord]:
        try:
            raw = json.loads(job.executor_records.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if not isinstance(raw, list):
            return []
        found = [_record(item, i) for i, item in enumerate(raw[:MAX_RECORDS])]
        return [r for r in found if r is not None]

    def host(self, job: JobDir, container_path: str) -> Path:
        return job.container(container_path)

    def mounts(self, job: JobDir, points: list[str], folders: list[str]) -> list[Bind]:
        binds = []
        for point in points:
            host = job.container("/" + point)
            host.mkdir(parents=True, exist_ok=True)
            binds.append(Bind(host, "/" + point))
        for folder in folders:
            job.container(folder).mkdir(parents=True, exist_ok=True)
        return binds

    def write(self, job: JobDir, container_path: str, content: bytes) -> None:
        dest = job.container(container_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        dest.chmod(0o400)

    def collect(self, job: JobDir, container_path: str, directory: bool,
                pattern: bool) -> list[Found]:
        tree = job.work.resolve()
        if pattern:
            base = _longest_plain_prefix(container_path)
            return [f for f in _walk(job, tree, base) if _matches(f.path, container_path)]
        if directory:
            return _walk(job, tree, container_path)
        host = job.container(container_path)
        return [Found(host, container_path)] if _inside(host, job.work, tree) else []


def _matches(path: str, pattern: str) -> bool:
    """POSIX pathname matching: a wildcard never matches a '/'."""
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))


def _longest_plain_prefix(pattern: str) -> str:
    parts = []
    for part in pattern.strip("/").split("/"):
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return "/" + "/".join(parts)


def _unlinked(host: Path, work: Path, tree: Path) -> bool:
    """``host`` (a path below ``work``) is reached without any symlink below ``work``:
    it resolves to the same place in the resolved ``tree``."""
    try:
        return host.resolve(strict=True) == tree / host.relative_to(work)
    except (OSError, ValueError):
        return False


def _inside(host: Path, work: Path, tree: Path) -> bool:
    """A regular file, reached without a symlink, inside the task's tree."""
    return host.is_file() and _unlinked(host, work, tree)


def _walk(job: JobDir, tree: Path, container_dir: str) -> list[Found]:
    top = job.container(container_dir)
    if not top.is_dir() or not _unlinked(top, job.work, tree):
        return []
    found: list[Found] = []
    for root, dirs, files in os.walk(top, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not Path(root, d).is_symlink())
        for name in sorted(files):
            host = Path(root, name)
            if _inside(host, job.work, tree):
                rel = host.relative_to(job.work).as_posix()
                found.append(Found(host, "/" + rel))
            if len(found) >= MAX_FOUND:
                return found
    return found
