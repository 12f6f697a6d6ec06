"""``spe data ls``: the datasets the caller may use as run inputs, with the projects (or
the visa) that grant them."""

from __future__ import annotations

import click

from spe.cli.client import client_for, service_options
from spe.cli.output import emit, output_options, show, table


@click.group()
@service_options
def data() -> None:
    """Datasets you may use as run inputs."""


@data.command("ls")
@output_options
@click.pass_context
def list_datasets(ctx: click.Context) -> None:
    """Datasets you may read, with the projects that grant them. Name a file of one in a
    workflow parameter as dataset://ID/PATH."""
    body = client_for(ctx).json("GET", "/spe/v1/datasets")

    def render() -> None:
        grid = table("id", "kind", "granted by", "description")
        for ds in body.get("datasets") or []:
            granted = ", ".join(g.removeprefix("project:") if g.startswith("project:")
                                else g for g in ds.get("granted_by") or [])
            grid.add_row(ds["id"], ds.get("kind", ""), granted,
                         " ".join(str(ds.get("description", "")).split()))
        show(grid)

    emit(body, render)
