"""The service's log lines: plain text (the default) or one JSON object per line
(``SPE_LOG_FORMAT=json``, python-json-logger), each carrying the request id and run id of
its context (``spe.domain.log_context``) and the structured fields a call passes as
``extra`` (``event``, ``run_id``, ``state``, ...). Every line passes through ``redact``
last, whatever its format: a bearer token, a JWT or a password in a URL that slipped into a
message or a traceback is masked before it is written."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from spe.domain import log_context

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
_SECRETS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "***"),
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@\"']*:)[^@\s/\"']+@"), r"\1***@"),
)


def redact(line: str) -> str:
    """``line`` with bearer tokens, JWTs and URL passwords masked."""
    for pattern, replacement in _SECRETS:
        line = pattern.sub(replacement, line)
    return line


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``run_id`` from the context to a record that has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", log_context.request_id),
                          ("run_id", log_context.run_id)):
            if not getattr(record, name, ""):
                setattr(record, name, var.get())
        ids = [f"{name}={getattr(record, name)}" for name in ("request_id", "run_id")
               if getattr(record, name, "")]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return True


class ClientErrorsAtInfo(logging.Filter):
    """A client's bad request is not the service's error: connexion's validators log the
    400s they raise at ERROR; they are written at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("connexion.validators") and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the
    context's ids (when set) and the record's ``extra`` fields."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"},
                         reserved_attrs=[*_RESERVED, "context", "color_message"])

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        for name in ("request_id", "run_id"):
            if not log_data.get(name):
                log_data.pop(name, None)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_RESERVED = ("args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName",
             "levelname", "levelno", "lineno", "module", "msecs", "message", "msg", "name",
             "pathname", "process", "processName", "relativeCreated", "stack_info", "thread",
             "threadName", "taskName")


def configure_logging(fmt: LogFormat, level: str = "INFO") -> None:
    """One handler on the root logger (stderr) in ``fmt``; the loggers of uvicorn and
    Celery propagate to it. Replaces any handler configured before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(ClientErrorsAtInfo())
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python's warnings become log lines (py.warnings)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
