"""Helpers shared by the engine adapters: version probing, log reading and output
discovery."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from spe.domain.catalog import WorkflowEntry

_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")


def resolve_binary(name: str) -> str:
    """``name`` on PATH, else beside this Python (a virtualenv's bin), else ``name``."""
    if "/" in name or shutil.which(name):
        return name
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


def probe_version(binary: str, flag: str = "--version", timeout: float = 60.0) -> str:
    """The version an executable reports, or '' when it is absent or does not answer."""
    path = shutil.which(binary)
    if path is None:
        return ""
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=timeout,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = _VERSION.search(out.stdout + out.stderr)
    return match.group(1) if match else ""


def read_log(path: Path) -> str:
    """The complete lines of a log an engine may still be writing: '' when it is absent
    or unreadable, and without a last line that has no newline yet (a partial line)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[:text.rfind("\n") + 1]


def declared_outputs(entry: WorkflowEntry, outdir: Path) -> list[Path]:
    """Regular files (not symlinks) under ``outdir`` that match the entry's output globs,
    relative to ``outdir``, sorted. Anything resolving outside ``outdir`` is ignored."""
    root = outdir.resolve()
    found: set[Path] = set()
    for pattern in entry.outputs:
        for path in outdir.glob(pattern):
            if path.is_symlink() or not path.is_file():
                continue
            if not path.resolve().is_relative_to(root):
                continue
            found.add(path.relative_to(outdir))
    return sorted(found)
