"""The files every executor keeps in a run directory: the handle (written atomically when
the submission was made, read by ``find`` after a restart) and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

from spe.domain.models import JSON

HANDLE_FILE = "handle.json"
EXIT_FILE = "exit_status"
CANCEL_FILE = "cancel_requested"


def write_handle(workdir: Path, handle: JSON) -> None:
    tmp = workdir / (HANDLE_FILE + ".tmp")
    tmp.write_text(json.dumps(handle))
    tmp.replace(workdir / HANDLE_FILE)  # atomic: a reader sees all of it or nothing


def read_handle(workdir: Path) -> JSON | None:
    """The recorded handle, or None when there is none (or only a torn one)."""
    try:
        handle = json.loads((workdir / HANDLE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return handle if isinstance(handle, dict) else None


def read_exit_code(workdir: Path) -> int | None:
    try:
        return int((workdir / EXIT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
