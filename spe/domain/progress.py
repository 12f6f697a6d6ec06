"""A run's progress as its engine reported it: how many jobs the engine plans (``planned``)
and how many of them have finished (``done``). Snakemake's logger plugin keeps both in the
job's ``logs/progress.json`` (``JobDir.progress``); counts only, never a data value."""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_BYTES = 4096  # the plugin's file is one small object


@dataclass(frozen=True)
class Progress:
    planned: int | None = None
    done: int | None = None


def _count(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None  # type: ignore[return-value]


def parse_progress(data: bytes | None) -> Progress:
    """The counts in the plugin's file; unknown (None) for what is absent or malformed."""
    if not data:
        return Progress()
    try:
        found = json.loads(data)
    except ValueError:
        return Progress()
    if not isinstance(found, dict):
        return Progress()
    return Progress(planned=_count(found.get("planned")), done=_count(found.get("done")))
