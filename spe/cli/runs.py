"""``spe run ...``: the user side, speaking WES over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
import requests

from spe.cli.catalog_view import workflows
from spe.cli.client import WesClient, client_for, service_options
from spe.cli.errors import ApiError, BadInput, CliError, Interrupted, Unreachable
from spe.cli.follow import FINAL, POLL_ERRORS, Outage, follow, follow_hint
from spe.cli.output import console, emit, output_options, show, table
from spe.domain.jobdir import quarantined_log

STATES = ("QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "COMPLETE", "EXECUTOR_ERROR",
          "SYSTEM_ERROR", "CANCELED", "CANCELING", "PREEMPTED", "UNKNOWN")
_client = client_for  # the name older callers use


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"must be KEY=VALUE, got {item!r}", param_hint=what)
        result[key] = value
    return result


def _typed(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _params_file(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a usage error (exit 2) naming the problem otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"--params-file: cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (f" (line {exc.lineno}, column {exc.colno})"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise BadInput(f"--params-file: {path} is not valid JSON{where}") from None
    if not isinstance(data, dict):
        raise BadInput(f"--params-file: {path} must hold a JSON object of parameters")
    return data


@click.group()
@service_options
def run() -> None:
    """Submit and follow workflow runs (GA4GH WES)."""


run.add_command(workflows)


@run.command("submit")
@click.argument("workflow")
@click.option("--param", "-p", multiple=True, help="KEY=VALUE (value parsed as JSON if it can).")
@click.option("--params-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON object of parameters.")
@click.option("--example", default="", help="Use the named example's params (default: first).")
@click.option("--engine-param", "-e", multiple=True, help="KEY=VALUE engine option.")
@click.option("--tag", "-t", multiple=True, help="KEY=VALUE tag.")
@click.option("--wait/--no-wait", default=False, help="Follow the run until it ends.")
@click.option("--idempotency-key", default="", metavar="KEY",
              help="Names this submission: a repeat with the same KEY returns the same run "
              "(default: a new random key).")
@click.option("--retries", default=None, type=click.IntRange(0, 20),
              help="How often to retry when the connection fails or the answer is lost "
              "(default: SPE_CLI_RETRIES or 4).")
@click.pass_context
def submit(ctx: click.Context, workflow: str, param: tuple[str, ...], params_file: Path | None,
           example: str, engine_param: tuple[str, ...], tag: tuple[str, ...],
           wait: bool, idempotency_key: str, retries: int | None) -> None:
    """Submit WORKFLOW (id, id@version or sha256:digest) from the catalog; prints the run
    id. The submission carries an Idempotency-Key, so retrying it after a lost connection
    never makes a second run."""
    extra = _params_file(params_file) if params_file else {}
    given = {k: _typed(v) for k, v in _pairs(param, "--param").items()}
    tags, options = _pairs(tag, "--tag"), _pairs(engine_param, "--engine-param")
    client = client_for(ctx, retries)
    entry = _find_entry(client, workflow)
    params = {**_example_params(entry, example), **extra, **given}
    fields = {"workflow_url": workflow, "workflow_type": entry["workflow_type"],
              "workflow_type_version": entry["workflow_type_version"],
              "workflow_params": params, "tags": tags,
              "workflow_engine_parameters": options}
    key = idempotency_key or uuid.uuid4().hex
    try:
        run_id = client.submit(fields, key)
    except (requests.ConnectionError, requests.Timeout):
        raise Unreachable(
            f"cannot reach {client.base}; the run may or may not have been made: repeat "
            f"the same command with --idempotency-key {key} to find out without making a "
            "second one") from None
    console(stderr=True).print(f"submitted [bold]{entry['ref']}[/bold] as run "
                               f"[cyan]{run_id}[/cyan]")
    if not wait:
        click.echo(run_id)
        return
    state = follow(client, run_id)
    show_run(client, run_id)
    if state != "COMPLETE":
        raise CliError(f"run {run_id} ended {state}")


def _find_entry(client: WesClient, ref: str) -> dict[str, Any]:
    entries = client.workflows()
    for entry in entries:
        if ref in (entry["ref"], entry["bundle_digest"]):
            return entry
    matches = [e for e in entries if e["id"] == ref]
    if not matches:
        raise CliError(f"{ref!r} is not in the catalog; see `spe run workflows`")
    return max(matches, key=lambda e: [int(p) for p in e["version"].split(".")[:3]])


def _example_params(entry: dict[str, Any], name: str) -> dict[str, Any]:
    examples = entry.get("examples") or []
    for ex in examples:
        if not name or ex.get("name") == name:
            return dict(ex.get("params") or {})
    if name:
        raise CliError(f"{entry['ref']} has no example {name!r}")
    return {}


def show_run(client: WesClient, run_id: str, body: dict[str, Any] | None = None) -> None:
    body = body or client.run(run_id)
    log = body.get("run_log", {})
    out = console()
    out.print(f"run {run_id}: [bold]{body['state']}[/bold] (exit code {log.get('exit_code')})")
    for line in log.get("system_logs", []):
        out.print(f"  {line}", markup=False)
    grid = table("output", "size", "sha256",
                 title="outputs (metadata; files stay in the enclave until released)")
    for path, meta in sorted((body.get("outputs") or {}).items()):
        grid.add_row(path, str(meta.get("size")), str(meta.get("checksum", ""))[7:23] + "…")
    show(grid)


@run.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES),
              help="Only runs in this state; repeatable.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Only runs with this tag; repeatable (all must match).")
@click.option("--workflow", default="", metavar="ID[@VERSION]",
              help="Only runs of this workflow (or this version of it).")
@click.option("--page-size", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--page-token", default="", help="next_page_token of the previous page.")
@click.option("--all", "every", is_flag=True, help="Every page, not only the first.")
@output_options
@click.pass_context
def list_runs(ctx: click.Context, states: tuple[str, ...], tags: tuple[str, ...],
              workflow: str, page_size: int, page_token: str, every: bool) -> None:
    """Your runs, newest first."""
    client = client_for(ctx)
    filters: dict[str, Any] = {"state": list(states),
                               "tag": [f"{k}:{v}" for k, v in _pairs(tags, "--tag").items()]}
    if workflow:
        filters["workflow"] = workflow
    page = client.runs(page_size, page_token, filters)
    runs, token = list(page.get("runs") or []), str(page.get("next_page_token") or "")
    while every and token:
        page = client.runs(page_size, token, filters)
        runs += page.get("runs") or []
        token = str(page.get("next_page_token") or "")

    def render() -> None:
        grid = table("run_id", "state", "workflow", "start", "end", "tags")
        for r in runs:
            grid.add_row(r["run_id"], r.get("state", ""), r.get("workflow", ""),
                         r.get("start_time", ""), r.get("end_time", ""),
                         " ".join(f"{k}={v}" for k, v in (r.get("tags") or {}).items()))
        show(grid)
        if token:
            console(stderr=True).print(f"more: --page-token {token} (or --all)",
                                       markup=False, soft_wrap=True)

    emit({"runs": runs, "next_page_token": token}, render)


@run.command("status")
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False, help="Follow the run until it ends.")
@output_options
@click.pass_context
def status(ctx: click.Context, run_id: str, wait: bool) -> None:
    """State, outputs and logs of one run (exit 1 with --wait unless it completes)."""
    client = client_for(ctx)
    state = follow(client, run_id) if wait else ""
    body = client.run(run_id)
    emit(body, lambda: show_run(client, run_id, body))
    if wait and state != "COMPLETE":
        raise CliError(f"run {run_id} ended {state}")


def _tasks_table(tasks: list[dict[str, Any]]) -> None:
    grid = table("id", "name", "start", "end", "exit")
    for t in tasks:
        grid.add_row(t["id"], t["name"], t.get("start_time", ""), t.get("end_time", ""),
                     str(t.get("exit_code", "")))
    show(grid)


@run.command("logs")
@click.argument("run_id")
@click.option("--stream", type=click.Choice(["stderr", "stdout"]), default="stderr",
              show_default=True)
@click.option("--tasks", is_flag=True, help="List the engine's jobs instead.")
@click.option("--follow", "-f", "keep", is_flag=True,
              help="Keep printing until the run ends: new log lines where the log may be "
              "read, else the jobs as they start and end.")
@output_options
@click.pass_context
def logs(ctx: click.Context, run_id: str, stream: str, tasks: bool, keep: bool) -> None:
    """The run's job list (--tasks), or the engine's own log where the project lets its
    researchers read it directly (``logs: direct``). Elsewhere the log is output of the
    run: this says how to ask for its release through the airlock."""
    client = client_for(ctx)
    if tasks and not keep:
        found = client.tasks(run_id)
        emit({"task_logs": found}, lambda: _tasks_table(found))
        return
    if not tasks:
        try:
            text = client.log(run_id, stream)
        except ApiError as exc:
            if exc.status != 403:
                raise
            if not keep:
                raise CliError(f"{exc}; the job list is `spe run logs --tasks {run_id}`; to "
                               f"ask for the log: spe release request {run_id} --file "
                               f"{quarantined_log(stream)} --justification '...'") from None
            console(stderr=True).print(f"the engine's log is output of the run (see `spe "
                                       f"run logs {run_id}`); following its jobs instead",
                                       markup=False)
        else:
            click.echo(text, nl=False)
            if keep:
                _follow_log(client, run_id, stream, text)
            return
    _follow_jobs(client, run_id)


def _run_state(client: WesClient, run_id: str) -> str:
    return str(client.status(run_id)["state"])


def _follow_log(client: WesClient, run_id: str, stream: str, shown: str,
                poll: float = 2.0) -> None:
    """Print what the log gained since ``shown`` until the run ends (the service serves
    the log's tail: when more was written between two polls than the tail holds, a line
    says so)."""
    outage = Outage(run_id)
    try:
        while True:
            try:
                ended = _run_state(client, run_id) in FINAL
                text = client.log(run_id, stream)
            except POLL_ERRORS as exc:
                outage.lost(exc)
                time.sleep(max(poll, 2.0))
                continue
            new = _gain(shown, text)
            if new is None:
                click.echo("[... earlier lines not shown: the log grew past its tail]")
                new = text
            click.echo(new, nl=False)
            shown = text
            if ended:
                return
            time.sleep(poll)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped following the log of run {run_id}") from None


def _gain(before: str, after: str) -> str | None:
    """What ``after`` (a later tail of the same growing log) adds to ``before``; None when
    the two do not overlap (more was written than a tail holds)."""
    if after.startswith(before):
        return after[len(before):]
    probe = after[:max(1, min(64, len(after) // 2))]
    at = before.find(probe) if probe else -1
    while at != -1:
        if after.startswith(before[at:]):
            return after[len(before) - at:]
        at = before.find(probe, at + 1)
    return None


def _follow_jobs(client: WesClient, run_id: str, poll: float = 2.0) -> None:
    """Print each job as the engine reports it starting and ending, until the run ends."""
    seen: dict[str, tuple[Any, Any]] = {}
    outage = Outage(run_id)
    try:
        while True:
            try:
                state, tasks = _run_state(client, run_id), client.tasks(run_id)
            except POLL_ERRORS as exc:
                outage.lost(exc)
                time.sleep(max(poll, 2.0))
                continue
            for t in tasks:
                now = (t.get("start_time"), t.get("exit_code"))
                if seen.get(t["id"]) != now:
                    what = "started" if now[1] is None else f"ended (exit {now[1]})"
                    click.echo(f"{t.get('end_time') or t.get('start_time') or ''} job "
                               f"{t['id']} {t['name']} {what}")
                    seen[t["id"]] = now
            if state in FINAL:
                click.echo(f"run {run_id} {state}")
                return
            time.sleep(poll)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped following run {run_id}; it carries on in the service: "
                          f"{follow_hint(run_id)}") from None


@run.command("cancel")
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False, help="Follow the run until it has stopped.")
@click.pass_context
def cancel(ctx: click.Context, run_id: str, wait: bool) -> None:
    """Cancel a run (CANCELING, then CANCELED once the engine has stopped)."""
    client = client_for(ctx)
    client.cancel(run_id)
    console(stderr=True).print(f"cancel requested for {run_id}")
    if wait:
        click.echo(follow(client, run_id))


__all__ = ["follow", "follow_hint", "run", "show_run"]
