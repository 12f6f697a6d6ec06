"""``spe run ...``: the user side, speaking WES over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from spe.cli.client import ApiError, WesClient
from spe.domain.jobdir import quarantined_log

FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
console = Console(stderr=True)
out = Console()


def _client(ctx: click.Context) -> WesClient:
    url, token = ctx.obj["url"], ctx.obj["token"]
    if not token:
        from spe.cli.tokens import current_token

        token = current_token(url) or ""
    if not token:
        raise click.ClickException("no token: run `spe login`, set SPE_TOKEN or pass --token "
                                   "(embedded default: export SPE_TOKEN=$(spe dev token "
                                   "--user NAME))")
    return WesClient(url, token)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{what} must be KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def _typed(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@click.group()
@click.option("--url", envvar="SPE_URL", default="http://127.0.0.1:8080", show_default=True,
              help="Base URL of the service (SPE_URL).")
@click.option("--token", envvar="SPE_TOKEN", default="", help="Bearer token (SPE_TOKEN).")
@click.pass_context
def run(ctx: click.Context, url: str, token: str) -> None:
    """Submit and follow workflow runs (GA4GH WES)."""
    ctx.obj = {"url": url, "token": token}


@run.command("submit")
@click.argument("workflow")
@click.option("--param", "-p", multiple=True, help="KEY=VALUE (value parsed as JSON if it can).")
@click.option("--params-file", type=click.Path(exists=True, path_type=Path))
@click.option("--example", default="", help="Use the named example's params (default: first).")
@click.option("--engine-param", "-e", multiple=True, help="KEY=VALUE engine option.")
@click.option("--tag", "-t", multiple=True, help="KEY=VALUE tag.")
@click.option("--wait/--no-wait", default=False, help="Follow the run until it ends.")
@click.option("--idempotency-key", default="", metavar="KEY",
              help="Names this submission: a repeat with the same KEY returns the same run "
              "(default: a new random key).")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(0, 20),
              help="How often to retry the submission when the connection fails.")
@click.pass_context
def submit(ctx: click.Context, workflow: str, param: tuple[str, ...], params_file: Path | None,
           example: str, engine_param: tuple[str, ...], tag: tuple[str, ...],
           wait: bool, idempotency_key: str, retries: int) -> None:
    """Submit WORKFLOW (id, id@version or sha256:digest) from the catalog. The submission
    carries an Idempotency-Key, so retrying it after a lost connection never makes a second
    run."""
    client = _client(ctx)
    entry = _find_entry(client, workflow)
    params = _example_params(entry, example)
    if params_file:
        params.update(json.loads(params_file.read_text()))
    params.update({k: _typed(v) for k, v in _pairs(param, "--param").items()})
    fields = {"workflow_url": workflow, "workflow_type": entry["workflow_type"],
              "workflow_type_version": entry["workflow_type_version"],
              "workflow_params": params, "tags": _pairs(tag, "--tag"),
              "workflow_engine_parameters": _pairs(engine_param, "--engine-param")}
    key = idempotency_key or uuid.uuid4().hex
    try:
        run_id = client.submit(fields, key, retries)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc
    except requests.ConnectionError as exc:
        raise click.ClickException(
            f"cannot reach {client.base}; the run may or may not have been made: repeat "
            f"the same command with --idempotency-key {key} to find out without making a "
            "second one") from exc
    console.print(f"submitted [bold]{entry['ref']}[/bold] as run [cyan]{run_id}[/cyan]")
    if not wait:
        out.print(run_id)
        return
    if wait:
        state = follow(client, run_id)
        show_run(client, run_id)
        if state != "COMPLETE":
            raise SystemExit(1)


def _find_entry(client: WesClient, ref: str) -> dict[str, Any]:
    entries = client.workflows()
    for entry in entries:
        if ref in (entry["ref"], entry["bundle_digest"]):
            return entry
    matches = [e for e in entries if e["id"] == ref]
    if not matches:
        raise click.ClickException(f"{ref!r} is not in the catalog; see `spe run workflows`")
    return max(matches, key=lambda e: [int(p) for p in e["version"].split(".")[:3]])


def _example_params(entry: dict[str, Any], name: str) -> dict[str, Any]:
    examples = entry.get("examples") or []
    for ex in examples:
        if not name or ex.get("name") == name:
            return dict(ex.get("params") or {})
    if name:
        raise click.ClickException(f"{entry['ref']} has no example {name!r}")
    return {}


def follow(client: WesClient, run_id: str, poll: float = 1.0, timeout: float = 3600) -> str:
    """Show a progress bar until the run reaches a final state; return that state."""
    deadline = time.monotonic() + timeout
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} jobs"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        bar = progress.add_task("QUEUED", total=None)
        while time.monotonic() < deadline:
            state = client.status(run_id)["state"]
            tasks = client.tasks(run_id)
            done = sum(1 for t in tasks if t.get("exit_code") == 0)
            progress.update(bar, description=f"{run_id[:8]} {state}",
                            total=max(len(tasks), 1) if tasks else None, completed=done)
            if state in FINAL:
                return str(state)
            time.sleep(poll)
    raise click.ClickException(f"run {run_id} did not end within {timeout:.0f} s")


def show_run(client: WesClient, run_id: str) -> None:
    body = client.run(run_id)
    log = body.get("run_log", {})
    out.print(f"run {run_id}: [bold]{body['state']}[/bold] (exit code {log.get('exit_code')})")
    for line in log.get("system_logs", []):
        out.print(f"  {line}")
    table = Table("output", "size", "sha256", title="outputs (metadata; files stay in the "
                  "enclave until released)")
    for path, meta in sorted((body.get("outputs") or {}).items()):
        table.add_row(path, str(meta.get("size")), str(meta.get("checksum", ""))[7:23] + "…")
    out.print(table)


@run.command("list")
@click.option("--page-size", type=int, default=20, show_default=True)
@click.pass_context
def list_runs(ctx: click.Context, page_size: int) -> None:
    """Your runs, newest first."""
    page = _client(ctx).runs(page_size)
    table = Table("state", "start", "end", "tags")
    table.add_column("run_id", no_wrap=True, min_width=32)
    for r in page.get("runs", []):
        table.add_row(r.get("state", ""), r.get("start_time", ""), r.get("end_time", ""),
                      json.dumps(r.get("tags", {})), r["run_id"])
    out.print(table)
    if page.get("next_page_token"):
        out.print("(more: use the WES API with page_token)")


@run.command("status")
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False, help="Follow the run until it ends.")
@click.pass_context
def status(ctx: click.Context, run_id: str, wait: bool) -> None:
    """State, outputs and logs of one run."""
    client = _client(ctx)
    try:
        state = follow(client, run_id) if wait else ""
        show_run(client, run_id)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc
    if wait and state != "COMPLETE":
        raise SystemExit(1)


@run.command("logs")
@click.argument("run_id")
@click.option("--stream", type=click.Choice(["stderr", "stdout"]), default="stderr",
              show_default=True)
@click.option("--tasks", is_flag=True, help="List the engine's jobs instead.")
@click.pass_context
def logs(ctx: click.Context, run_id: str, stream: str, tasks: bool) -> None:
    """The run's job list (--tasks), or the engine's own log where the project lets its
    researchers read it directly (``logs: direct``). Elsewhere the log is output of the
    run: this says how to ask for its release through the airlock."""
    client = _client(ctx)
    try:
        if tasks:
            table = Table("id", "name", "start", "end", "exit")
            for t in client.tasks(run_id):
                table.add_row(t["id"], t["name"], t.get("start_time", ""),
                              t.get("end_time", ""), str(t.get("exit_code", "")))
            out.print(table)
        else:
            click.echo(client.log(run_id, stream), nl=False)
    except ApiError as exc:
        if exc.status == 403 and not tasks:
            raise click.ClickException(
                f"{exc}\nThe job list is `spe run logs --tasks {run_id}`; to ask for the log: "
                f"spe release request {run_id} --file {quarantined_log(stream)} "
                "--justification '...'") from exc
        raise click.ClickException(str(exc)) from exc


@run.command("cancel")
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False)
@click.pass_context
def cancel(ctx: click.Context, run_id: str, wait: bool) -> None:
    """Cancel a run (CANCELING, then CANCELED once the engine has stopped)."""
    client = _client(ctx)
    try:
        client.cancel(run_id)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"cancel requested for {run_id}")
    if wait:
        out.print(follow(client, run_id))


@run.command("workflows")
@click.pass_context
def workflows(ctx: click.Context) -> None:
    """What you may run: the catalog."""
    table = Table("ref", "type", "name", "examples")
    for e in _client(ctx).workflows():
        table.add_row(e["ref"], f"{e['workflow_type']} {e['workflow_type_version']}",
                      e.get("name", ""), ", ".join(x.get("name", "") for x in e["examples"]))
    out.print(table)


