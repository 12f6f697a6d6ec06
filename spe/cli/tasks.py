"""``spe task ...``: single container tasks over GA4GH TES, as ``spe run`` is for WES."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from spe.cli.client import WesClient, client_for, service_options
from spe.cli.errors import BadInput
from spe.cli.output import emit, output_options

TES = "/ga4gh/tes/v1"
FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
console = Console(stderr=True)
out = Console()


def _call(client: WesClient, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """One TES request; errors reach the CLI's one handler (spe/cli/errors.py)."""
    body = client.call(method, TES + path, **kwargs).json()
    return body if isinstance(body, dict) else {}


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"{what} must be KEY=VALUE, got {item[:200]!r}")
        result[key] = value
    return result


@click.group()
@service_options
def task() -> None:
    """Create and follow single container tasks (GA4GH TES)."""


def _io(values: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """``URL=PATH`` pairs (an input's source or an output's destination, and the path in
    the container)."""
    return [{"url": url, "path": path} for url, path in _pairs(values, what).items()]


def _body(file: Path | None, image: str, cmd: tuple[str, ...], inputs: tuple[str, ...],
          outputs: tuple[str, ...], name: str, tags: tuple[str, ...]) -> dict[str, Any]:
    if file is not None:
        try:
            body = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{file} is not a readable JSON task: {exc}") from exc
        if not isinstance(body, dict):
            raise BadInput(f"{file} must hold a JSON object (a tesTask)")
        return body
    if not image or not cmd:
        raise click.UsageError("give a task file, or --image and a command after --")
    body = {"executors": [{"image": image, "command": list(cmd)}],
            "inputs": _io(inputs, "--input"), "outputs": _io(outputs, "--output"),
            "tags": _pairs(tags, "--tag")}
    if name:
        body["name"] = name
    return body


@task.command("submit", context_settings={"ignore_unknown_options": True})
@click.option("--image", default="", help="Image of the catalog (e.g. alpine).")
@click.option("--input", "-i", "inputs", multiple=True, metavar="URL=PATH",
              help="dataset://ID/FILE=/data/file (repeatable).")
@click.option("--output", "-o", "outputs", multiple=True, metavar="URL=PATH",
              help="quarantine:///NAME=/data/file (repeatable).")
@click.option("--name", default="")
@click.option("--tag", "-t", multiple=True, help="KEY=VALUE tag (project=ID picks one).")
@click.option("--wait/--no-wait", default=False, help="Follow the task until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the task id as JSON.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def submit(ctx: click.Context, image: str, inputs: tuple[str, ...],
           outputs: tuple[str, ...], name: str, tag: tuple[str, ...], wait: bool,
           as_json: bool, args: tuple[str, ...]) -> None:
    """Create a task from a file (a tesTask as JSON: `spe task submit task.json`) or from
    --image and the command after `--`:

    spe task submit --image alpine -o quarantine:///n.txt=/data/n.txt -- sh -c 'echo 1 >
    /data/n.txt'"""
    client = client_for(ctx)
    if not image and len(args) != 1:
        raise click.UsageError("give one task file, or --image and a command after --")
    file = None if image else Path(args[0])
    body = _body(file, image, args if image else (), inputs, outputs, name, tag)
    key = uuid.uuid4().hex  # a retry of this very submission never makes a second task
    task_id = str(_call(client, "POST", "/tasks", json=body, idempotency_key=key)["id"])
    if as_json and not wait:
        out.print_json(json.dumps({"id": task_id}))
        return
    console.print(f"created task [cyan]{task_id}[/cyan]")
    if not wait:
        out.print(task_id)
        return
    state = follow(client, task_id)
    show(client, task_id)
    if state != "COMPLETE":
        raise SystemExit(1)


def follow(client: WesClient, task_id: str, poll: float = 1.0, timeout: float = 86400) -> str:
    deadline = time.monotonic() + timeout
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console) as progress:
        bar = progress.add_task("QUEUED", total=None)
        while time.monotonic() < deadline:
            body = _call(client, "GET", f"/tasks/{task_id}", params={"view": "BASIC"})
            state = str(body.get("state"))
            ended = len((body.get("logs") or [{}])[0].get("logs") or [])
            total = len(body.get("executors", []))
            progress.update(bar, description=f"{task_id[:8]} {state} "
                                             f"({ended}/{total} executors ended)")
            if state in FINAL:
                return state
            time.sleep(poll)
    raise click.ClickException(f"task {task_id} did not end within {timeout:.0f} s")


def show(client: WesClient, task_id: str) -> None:
    body = _call(client, "GET", f"/tasks/{task_id}", params={"view": "FULL"})
    emit(body, lambda: _render(task_id, body))


def _render(task_id: str, body: dict[str, Any]) -> None:
    log = (body.get("logs") or [{}])[0]
    out.print(f"task {task_id}: [bold]{body['state']}[/bold]")
    for i, ex in enumerate(log.get("logs") or []):
        out.print(f"  executor {i}: exit code {ex.get('exit_code')}")
    for line in log.get("system_logs", []):
        out.print(f"  {line}")
    table = Table("output", "path in the container", "size",
                  title="outputs (in quarantine; they leave through the airlock)")
    for o in log.get("outputs", []):
        table.add_row(o["url"], o["path"], o["size_bytes"])
    out.print(table)


@task.command("get")
@click.argument("task_id")
@output_options
@click.pass_context
def get(ctx: click.Context, task_id: str) -> None:
    """State, executors' exit codes and outputs of one task (--json: the FULL task)."""
    show(client_for(ctx), task_id)


@task.command("list")
@click.option("--page-size", type=click.IntRange(1, 2047), default=20, show_default=True)
@click.option("--state", default="", help="Only tasks in this state.")
@click.option("--name-prefix", default="")
@output_options
@click.pass_context
def list_tasks(ctx: click.Context, page_size: int, state: str, name_prefix: str) -> None:
    """Your tasks, newest first."""
    params = {"view": "BASIC", "page_size": page_size, "name_prefix": name_prefix,
              **({"state": state} if state else {})}
    body = _call(client_for(ctx), "GET", "/tasks", params=params)

    def render() -> None:
        table = Table("state", "created", "name")
        table.add_column("id", no_wrap=True, min_width=32)
        for t in body.get("tasks", []):
            table.add_row(t["state"], t.get("creation_time", ""), t.get("name", ""), t["id"])
        out.print(table)

    emit(body, render)


@task.command("cancel")
@click.argument("task_id")
@click.pass_context
def cancel(ctx: click.Context, task_id: str) -> None:
    """Cancel a task (its job is stopped; it ends CANCELED)."""
    _call(client_for(ctx), "POST", f"/tasks/{task_id}:cancel")
    console.print(f"canceling task {task_id}")
