"""``spe release ...``: the airlock from the command line (requesters and reviewers)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import click

from spe.cli.client import WesClient, client_for, seg, service_options
from spe.cli.errors import CliError
from spe.cli.output import console, emit, output_options, show, table

RR = "/spe/v1/release-requests"
STATES = ("SUBMITTED", "CHECKING", "IN_REVIEW", "BLOCKED", "APPROVED", "REJECTED",
          "RETURNED", "WITHDRAWN", "RELEASED", "REVOKED")


def _path(request_id: str, action: str = "") -> str:
    return f"{RR}/{seg(request_id)}" + (f"/{action}" if action else "")


def render(body: dict[str, Any]) -> None:
    out = console()
    out.print(f"release request [cyan]{body['id']}[/cyan] of run {body['run_id']}: "
              f"[bold]{body['state']}[/bold] ({body['reviewers_voted']}/"
              f"{body['required_approvals']} reviewers)")
    if body.get("reason"):
        out.print(f"  reason: {body['reason']}", markup=False)
    grid = table("file", "size", "sha256", "checks")
    for f in body["files"]:
        found = [x for x in body["findings"] if x["path"] == f["path"]
                 and x["severity"] != "pass"]
        grid.add_row(f["path"], str(f["size"]), f["sha256"][:16] + "…",
                     "; ".join(f"{x['severity']}: {x['message']}" for x in found) or "ok")
    show(grid)
    for v in body["votes"]:
        out.print(f"  {v['reviewer']}: {v['decision']} {v['path']} ({v['reason']})",
                  markup=False)


@click.group()
@service_options
def release() -> None:
    """Ask for outputs to leave the enclave, review requests, download released files."""


@release.command("request")
@click.argument("run_id")
@click.option("--file", "files", multiple=True, required=True, help="Output path; repeat.")
@click.option("--justification", required=True,
              help="Why these files may leave (10 to 4000 characters).")
@output_options
@click.pass_context
def request_release(ctx: click.Context, run_id: str, files: tuple[str, ...],
                    justification: str) -> None:
    """Request release of FILES of RUN_ID (prints the request id on stdout)."""
    body = client_for(ctx).json("POST", RR, json={
        "run_id": run_id, "files": list(files), "justification": justification})

    def text() -> None:
        render(body)
        click.echo(body["id"])

    emit(body, text)


@release.command("list")
@click.option("--role", type=click.Choice(["requester", "reviewer"]), default=None)
@click.option("--state", type=click.Choice(STATES), default=None)
@output_options
@click.pass_context
def list_requests(ctx: click.Context, role: str | None, state: str | None) -> None:
    """Requests you made, or may review (every page)."""
    params: dict[str, Any] = {"page_size": 500, **({"role": role} if role else {}),
                              **({"state": state} if state else {})}
    found = client_for(ctx).pages(RR, "requests", params)

    def text() -> None:
        grid = table("id", "run", "requester", "state", "files")
        for r in found:
            grid.add_row(r["id"], r["run_id"], r["requester"], r["state"],
                         str(len(r["files"])))
        show(grid)

    emit({"requests": found}, text)


@release.command("show")
@click.argument("request_id")
@output_options
@click.pass_context
def show_request(ctx: click.Context, request_id: str) -> None:
    """A request, its checks and (once decided) every vote."""
    body = client_for(ctx).json("GET", _path(request_id))
    emit(body, lambda: render(body))


@release.command("vote")
@click.argument("request_id")
@click.option("--path", "paths", multiple=True, help="File to vote on (default: all).")
@click.option("--decision", type=click.Choice(["approve", "request_changes", "reject"]),
              required=True)
@click.option("--reason", required=True)
@output_options
@click.pass_context
def vote(ctx: click.Context, request_id: str, paths: tuple[str, ...], decision: str,
         reason: str) -> None:
    """Vote on files of a request you review."""
    client = client_for(ctx)
    body = client.json("GET", _path(request_id))
    for path in paths or tuple(f["path"] for f in body["files"]):
        body = client.json("POST", _path(request_id, "votes"),
                           json={"path": path, "decision": decision, "reason": reason})
    emit(body, lambda: render(body))


def _step(action: str, doc: str) -> click.Command:
    @output_options
    @click.argument("request_id")
    @click.pass_context
    def command(ctx: click.Context, request_id: str) -> None:
        body = client_for(ctx).json("POST", _path(request_id, action))
        emit(body, lambda: render(body))

    command.__doc__ = doc
    return click.command(action)(command)


release.add_command(_step("resubmit", "Resubmit a RETURNED request of yours (its files "
                          "are snapshotted and checked again)."))
release.add_command(_step("withdraw", "Withdraw a RETURNED request of yours."))
release.add_command(_step("revoke", "Revoke a release (reviewers of the project, "
                          "operators): its files leave the outbox."))


def _after_release(client: WesClient, request_id: str, wait: float) -> dict[str, Any]:
    """The request, once it has left APPROVED (the release to the outbox follows the
    decision in the background), or as it is after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    body = client.json("GET", _path(request_id))
    while body["state"] == "APPROVED" and time.monotonic() < deadline:
        time.sleep(0.5)
        body = client.json("GET", _path(request_id))
    return body


def _fetch(client: WesClient, request_id: str, entry: dict[str, Any], root: Path) -> Path:
    """Download one file into ``root`` beside a temporary name, check its size and
    sha256 against the request, then move it in place; a mismatch leaves nothing."""
    target = (root / str(entry["path"])).resolve()
    if not target.is_relative_to(root.resolve()):
        raise CliError(f"refusing to write outside {root}: {entry['path']}")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    digest, size = hashlib.sha256(), 0
    resp = client.call("GET", _path(request_id, "download"), params={"path": entry["path"]},
                       stream=True)
    try:
        with resp, part.open("wb") as fh:
            for chunk in resp.iter_content(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                fh.write(chunk)
        if digest.hexdigest() != entry["sha256"] or size != entry["size"]:
            raise CliError(f"{entry['path']}: the download does not match the request "
                           f"(sha256 {digest.hexdigest()[:16]}…, {size} bytes; expected "
                           f"{entry['sha256'][:16]}…, {entry['size']} bytes); nothing "
                           "was kept")
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    return target


@release.command("download")
@click.argument("request_id")
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path),
              default=Path("released"), show_default=True)
@click.option("--wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for an APPROVED request to be released.")
@click.pass_context
def download(ctx: click.Context, request_id: str, dest: Path, wait: float) -> None:
    """Download every released file of a request into DEST/<request id>/, each checked
    against the sha256 and size the request recorded, and its RO-Crate beside them."""
    client = client_for(ctx)
    body = _after_release(client, request_id, wait)
    if body["state"] != "RELEASED":
        raise CliError(f"request {request_id} is {body['state']}, not RELEASED")
    root = dest / request_id
    for entry in body["files"]:
        target = _fetch(client, request_id, entry, root)
        console(stderr=True).print(f"downloaded {entry['path']} -> {target} (sha256 "
                                   "verified)", markup=False, soft_wrap=True)
    crate = client.call("GET", _path(request_id, "crate"))
    (root / "ro-crate-metadata.json").write_text(json.dumps(crate.json(), indent=2),
                                                 encoding="utf-8")
