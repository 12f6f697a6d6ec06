"""What the user-side commands print: a table for people, JSON for scripts.

Every listing and show command takes ``--json`` (the same as ``--output json``): it prints
the service's own JSON (one document on stdout, nothing else there), so scripts never parse
tables. Tables are for people: on a terminal they fit its width and fold long cells rather
than cut them; when stdout is not a terminal (a pipe, a file) nothing is wrapped or cut.
Messages go to stderr, data to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])
_KEY = "spe.output"
UNWRAPPED_WIDTH = 100_000


def _set(ctx: click.Context, param: click.Parameter, value: object) -> object:
    if param.name == "json" and value:
        ctx.meta[_KEY] = "json"
    elif param.name == "output" and value and ctx.meta.get(_KEY) != "json":
        ctx.meta[_KEY] = value
    return value


def output_options(command: F) -> F:
    """``--json`` and ``--output table|json`` on a command."""
    command = click.option("--output", "-o", type=click.Choice(["table", "json"]),
                           default=None, expose_value=False, callback=_set,
                           help="table (default) or json.")(command)
    return click.option("--json", is_flag=True, expose_value=False, callback=_set,
                        help="Print JSON on stdout (same as --output json).")(command)


def wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.meta.get(_KEY) == "json"


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): unbounded width when it is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=UNWRAPPED_WIDTH, soft_wrap=True, no_color=True,
                   highlight=False)


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells fold on a narrow terminal instead of being cut."""
    grid = Table(title=title)
    for name in columns:
        grid.add_column(name, overflow="fold")
    return grid


def emit(data: Any, render: Callable[[], None]) -> None:
    """``data`` as JSON on stdout with ``--json``; else ``render()`` (a table)."""
    if wants_json():
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        render()


def show(grid: Table) -> None:
    console().print(grid)
