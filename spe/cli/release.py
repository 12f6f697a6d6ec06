"""``spe release ...``: the airlock from the command line (requesters and reviewers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console
from rich.table import Table

from spe.cli.client import TIMEOUT, ApiError
from spe.cli.runs import _client

out = Console()
RR = "/spe/v1/release-requests"


def _call(ctx: click.Context, method: str, path: str, **kw: Any) -> requests.Response:
    client = _client(ctx)
    try:
        return client.call(method, path, **kw)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc


def show(body: dict[str, Any]) -> None:
    out.print(f"release request [cyan]{body['id']}[/cyan] of run {body['run_id']}: "
              f"[bold]{body['state']}[/bold] ({body['reviewers_voted']}/"
              f"{body['required_approvals']} reviewers)")
    if body.get("reason"):
        out.print(f"  reason: {body['reason']}")
    table = Table("file", "size", "sha256", "checks")
    for f in body["files"]:
        found = [x for x in body["findings"] if x["path"] == f["path"]
                 and x["severity"] != "pass"]
        table.add_row(f["path"], str(f["size"]), f["sha256"][:16] + "…",
                      "; ".join(f"{x['severity']}: {x['message']}" for x in found) or "ok")
    out.print(table)
    for v in body["votes"]:
        out.print(f"  {v['reviewer']}: {v['decision']} {v['path']} ({v['reason']})")


@click.group()
@click.option("--url", envvar="SPE_URL", default="http://127.0.0.1:8080", show_default=True)
@click.option("--token", envvar="SPE_TOKEN", default="")
@click.pass_context
def release(ctx: click.Context, url: str, token: str) -> None:
    """Ask for outputs to leave the enclave, review requests, download released files."""
    ctx.obj = {"url": url, "token": token}


@release.command("request")
@click.argument("run_id")
@click.option("--file", "files", multiple=True, required=True, help="Output path; repeat.")
@click.option("--justification", required=True, help="Why these files may leave.")
@click.pass_context
def request_release(ctx: click.Context, run_id: str, files: tuple[str, ...],
                    justification: str) -> None:
    """Request release of FILES of RUN_ID (prints the request id on stdout)."""
    body = _call(ctx, "POST", RR, json={"run_id": run_id, "files": list(files),
                                        "justification": justification}).json()
    show(body)
    click.echo(body["id"])


@release.command("list")
@click.option("--role", type=click.Choice(["requester", "reviewer"]), default=None)
@click.pass_context
def list_requests(ctx: click.Context, role: str | None) -> None:
    """Requests you made, or may review."""
    table = Table("id", "run", "requester", "state", "files")
    for r in _all_requests(ctx, role):
        table.add_row(r["id"], r["run_id"][:12], r["requester"], r["state"],
                      str(len(r["files"])))
    out.print(table)


def _all_requests(ctx: click.Context, role: str | None) -> Iterator[dict[str, Any]]:
    """Every page of the listing, following ``next_page_token``."""
    params: dict[str, Any] = {"page_size": 500, **({"role": role} if role else {})}
    while True:
        body = _call(ctx, "GET", RR, params=params).json()
        yield from body["requests"]
        if not body.get("next_page_token"):
            return
        params["page_token"] = body["next_page_token"]


@release.command("show")
@click.argument("request_id")
@click.pass_context
def show_request(ctx: click.Context, request_id: str) -> None:
    """A request, its checks and (once decided) every vote."""
    show(_call(ctx, "GET", f"{RR}/{request_id}").json())


@release.command("vote")
@click.argument("request_id")
@click.option("--path", "paths", multiple=True, help="File to vote on (default: all).")
@click.option("--decision", type=click.Choice(["approve", "request_changes", "reject"]),
              required=True)
@click.option("--reason", required=True)
@click.pass_context
def vote(ctx: click.Context, request_id: str, paths: tuple[str, ...], decision: str,
         reason: str) -> None:
    """Vote on files of a request you review."""
    body = _call(ctx, "GET", f"{RR}/{request_id}").json()
    for path in paths or tuple(f["path"] for f in body["files"]):
        body = _call(ctx, "POST", f"{RR}/{request_id}/votes",
                     json={"path": path, "decision": decision, "reason": reason}).json()
    show(body)


def _after_release(ctx: click.Context, request_id: str, wait: float) -> dict[str, Any]:
    """The request, once it has left APPROVED (the release to the outbox follows the
    decision in the background), or as it is after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    body: dict[str, Any] = _call(ctx, "GET", f"{RR}/{request_id}").json()
    while body["state"] == "APPROVED" and time.monotonic() < deadline:
        time.sleep(0.5)
        body = _call(ctx, "GET", f"{RR}/{request_id}").json()
    return body


@release.command("download")
@click.argument("request_id")
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path),
              default=Path("released"), show_default=True)
@click.option("--wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for an APPROVED request to be released.")
@click.pass_context
def download(ctx: click.Context, request_id: str, dest: Path, wait: float) -> None:
    """Download every released file of a request into DEST/<request id>/."""
    client = _client(ctx)
    body = _after_release(ctx, request_id, wait)
    for f in body["files"]:
        target = (dest / request_id / f["path"]).resolve()
        if not target.is_relative_to((dest / request_id).resolve()):
            raise click.ClickException(f"refusing to write outside {dest}: {f['path']}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with client.session.get(f"{client.base}{RR}/{request_id}/download",
                                 params={"path": f["path"]}, stream=True,
                                 timeout=TIMEOUT) as resp:
            if resp.status_code != 200:
                raise click.ClickException(f"HTTP {resp.status_code}: {resp.text[:500]}")
            with target.open("wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
        out.print(f"downloaded {f['path']} -> {target}")
