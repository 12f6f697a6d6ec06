"""The files every executor keeps in a run directory: the handle (written atomically when
the submission was made, read by ``find`` after a restart) and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

from spe.domain.jobdir import JobDir
from spe.domain.models import JSON


def write_handle(workdir: Path, handle: JSON) -> None:
    path = JobDir(workdir).handle
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(handle))
    tmp.replace(path)  # atomic: a reader sees all of it or nothing


def read_handle(workdir: Path) -> JSON | None:
    """The recorded handle, or None when there is none (or only a torn one)."""
    try:
        handle = json.loads(JobDir(workdir).handle.read_text())
    except (OSError, ValueError):
        return None
    return handle if isinstance(handle, dict) else None


def read_exit_code(workdir: Path) -> int | None:
    try:
        return int(JobDir(workdir).exit_status.read_text().strip())
    except (OSError, ValueError):
        return None
