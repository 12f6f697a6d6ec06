"""spe's Snakemake logger plugin (``--logger spe``): the engine's structured job events as
JSON lines, so that spe need not parse Snakemake's human-readable log.

Only ids, rule names, times, counts and scheduler ids are written, never a data value
(no wildcards, params, file names, shell commands or workflow messages)."""

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

# snakemake-executor-plugin-slurm's own message (no structured event carries the id)
_SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+)")


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    # Optional[...], not `X | None`: snakemake turns the annotation into an argparse type
    events: Optional[str] = field(  # noqa: UP045
        default=None, metadata={"help": "File to append the job events to (JSON lines)",
                                "env_var": False, "required": True})
    progress: Optional[str] = field(  # noqa: UP045
        default=None, metadata={"help": "File to keep the planned and finished job "
                                "counts in (JSON)", "env_var": False, "required": False})


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        settings = self.settings
        if not isinstance(settings, LogHandlerSettings) or not settings.events:
            raise ValueError("--logger-spe-events FILE is required")
        self._lock = threading.Lock()
        self._events = Path(settings.events).open("a", encoding="utf-8")  # noqa: SIM115
        self._progress = Path(settings.progress) if settings.progress else None
        self._counts: dict[str, int | None] = {"planned": None, "done": None}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            for line in self._lines(record):
                self._write(line)
        except Exception:  # a logger must never stop the engine
            self.handleError(record)

    def _lines(self, record: logging.LogRecord) -> list[dict[str, Any]]:
        at = datetime.fromtimestamp(record.created, UTC).isoformat().replace(
            "+00:00", "Z")
        event = getattr(record, "event", None)
        if event == LogEvent.RUN_INFO:
            stats = getattr(record, "stats", None)
            total = _as_int(stats.get("total")) if isinstance(stats, dict) else None
            return [] if total is None else [{"event": "planned", "at": at,
                                              "total": total}]
        if event == LogEvent.PROGRESS:
            done, total = _as_int(getattr(record, "done", None)), \
                _as_int(getattr(record, "total", None))
            return [{"event": "progress", "at": at, "done": done, "total": total}]
        if event == LogEvent.JOB_INFO:
            return self._job(at, "started", getattr(record, "jobid", None),
                             rule=getattr(record, "rule_name", None))
        if event == LogEvent.JOB_FINISHED:
            return self._job(at, "finished", getattr(record, "job_id", None))
        if event == LogEvent.JOB_ERROR:
            return self._job(at, "failed", getattr(record, "jobid", None),
                             rule=getattr(record, "rule_name", None))
        return self._submitted(at, record) if event is None else []

    @staticmethod
    def _submitted(at: str, record: logging.LogRecord) -> list[dict[str, Any]]:
        m = _SUBMITTED.match(record.msg) if isinstance(record.msg, str) else None
        return [{"event": "submitted", "at": at, "jobid": int(m.group(1)),
                 "external": m.group(2)}] if m else []

    @staticmethod
    def _job(at: str, kind: str, jobid: Any, rule: Any = None) -> list[dict[str, Any]]:
        if _as_int(jobid) is None:
            return []
        line: dict[str, Any] = {"event": kind, "at": at, "jobid": jobid}
        if kind != "finished":
            line["rule"] = str(rule) if rule is not None else "?"
        return [line]

    def _write(self, line: dict[str, Any]) -> None:
        with self._lock:
            self._events.write(json.dumps(line, separators=(",", ":")) + "\n")
            self._events.flush()
            if line["event"] in ("planned", "progress"):
                self._count(line)

    def _count(self, line: dict[str, Any]) -> None:
        if line.get("total") is not None:
            self._counts["planned"] = line["total"]
        if line.get("done") is not None:
            self._counts["done"] = line["done"]
        if not self._progress:
            return
        tmp = self._progress.with_name(self._progress.name + ".tmp")
        tmp.write_text(json.dumps(self._counts), encoding="utf-8")
        tmp.replace(self._progress)

    def close(self) -> None:
        with self._lock:
            if not self._events.closed:
                self._events.close()
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False  # not a log for people: snakemake must not list it as one

    @property
    def has_filter(self) -> bool:
        return True  # it takes every record: the events it wants are not all INFO+

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
