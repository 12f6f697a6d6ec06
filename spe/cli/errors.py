"""How every ``spe`` command fails: one line on stderr and a documented exit code.

- 0: success;
- 1: failure: the service refused the request (HTTP 4xx/5xx), a run did not complete, a
  local file could not be read or written;
- 2: usage: a bad option, argument, URL or local input file (a malformed
  ``--params-file``);
- 3: the service could not be reached (connection refused, timed out, DNS);
- 130: interrupted (Ctrl-C); a followed run keeps running on the service.

``handled()`` is the single translation point: the root group of ``spe`` (``spe/cli/main.py``)
wraps every command in it, so a command group added later gets the same behaviour without
doing anything. Commands raise ``CliError`` (or let ``ApiError``, ``requests`` errors and
``KeyboardInterrupt`` through); nothing prints a traceback unless ``SPE_DEBUG=1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
import requests

OK, FAILURE, USAGE, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 130
DEBUG_ENV = "SPE_DEBUG"


class CliError(click.ClickException):
    """A one-line failure; the class says the exit code (1)."""

    exit_code = FAILURE


class BadInput(CliError):
    """Bad local input: a URL, a file (exit 2)."""

    exit_code = USAGE


class Unreachable(CliError):
    """The service could not be reached (exit 3)."""

    exit_code = UNREACHABLE


class Interrupted(CliError):
    """Ctrl-C (exit 130)."""

    exit_code = INTERRUPTED


class ApiError(CliError):
    """The service answered 4xx/5xx; ``msg`` is its GA4GH ErrorResponse message."""

    def __init__(self, status: int, msg: str, hint: str = "") -> None:
        super().__init__(f"HTTP {status}: {msg}" + (f" ({hint})" if hint else ""))
        self.status = status
        self.msg = msg


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line, cut at ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _url_of(exc: requests.RequestException) -> str:
    url = getattr(exc.request, "url", "") or ""
    return str(url).split("?")[0] or "the service"


def _request_error(exc: requests.RequestException) -> CliError:
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema):
        return BadInput(f"bad service URL: {one_line(str(exc), 300)} (check SPE_URL or "
                        "--url)")
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return Unreachable(f"cannot reach {_url_of(exc)}: is the service running, and is "
                           "SPE_URL (or --url) right?")
    return CliError(f"request to {_url_of(exc)} failed: {type(exc).__name__}")


def translate(exc: BaseException) -> CliError | None:
    """The ``CliError`` an exception stands for, or None if it is already one of click's
    own (usage errors, ``Exit``, ``Abort``) or a ``SystemExit``."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, click.ClickException | click.exceptions.Exit | click.Abort
                  | SystemExit):
        return None
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted("interrupted")
    if isinstance(exc, requests.RequestException):
        return _request_error(exc)
    return _local_error(exc)


def _local_error(exc: BaseException) -> CliError:
    if isinstance(exc, json.JSONDecodeError):
        return CliError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return CliError(f"{exc.strerror or type(exc).__name__}{where}")
    return CliError(f"unexpected error ({type(exc).__name__}: {one_line(str(exc), 300)}); "
                    f"set {DEBUG_ENV}=1 to see where")


@contextmanager
def handled() -> Iterator[None]:
    """Run a command; any failure leaves as a ``CliError`` (click prints it on one line
    and exits with its code). With ``SPE_DEBUG=1`` unexpected errors keep their trace."""
    try:
        yield
    except BaseException as exc:
        error = translate(exc)
        if error is None or error is exc:
            raise
        if os.environ.get(DEBUG_ENV) == "1" and not isinstance(
                exc, requests.RequestException | KeyboardInterrupt):
            raise
        raise error from None
