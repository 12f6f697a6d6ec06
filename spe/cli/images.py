"""``spe image ...``: the operator's side of the TES image allowlist."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _store(path: Path | None) -> Path:
    from spe.cli.main import _settings

    return path or _settings().images_dir


@click.group()
def image() -> None:
    """TES image catalog: import, list and verify HPC container images."""


STORE = click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Image store (default: SPE_IMAGE_STORE or SPE_HOME/images).")


@image.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="Image name, e.g. busybox.")
@click.option("--tag", default="latest", show_default=True)
@click.option("--alias", "aliases", multiple=True,
              help="Another name tasks may use for it (e.g. alpine:3.19); repeatable.")
@click.option("--group", default=None, help="POSIX group that may read the image "
              "(default: SPE_IMAGE_GROUP; empty: private).")
@STORE
def image_import(source: Path, name: str, tag: str, aliases: tuple[str, ...],
                 group: str | None, store: Path | None) -> None:
    """Add an image root (a folder or a tar archive) to the catalog, pinned by digest."""
    from spe.adapters.containers.images import import_image
    from spe.cli.main import _settings, _write_privately

    _write_privately()  # the store is the service's: private unless a group is named
    try:
        entry = import_image(_store(store), source, name, tag, aliases=aliases,
                             group=_settings().image_group if group is None else group)
    except (ValueError, OSError, KeyError) as exc:
        raise click.ClickException(f"the image was not imported: {exc}") from exc
    click.echo(f"{entry.ref} {entry.digest}")


@image.command("list")
@STORE
def image_list(store: Path | None) -> None:
    """The catalog: name:tag, digest, aliases."""
    from spe.adapters.containers.images import load_catalog

    for entry in load_catalog(_store(store)).entries:
        aliases = f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else ""
        click.echo(f"{entry.ref} {entry.digest}{aliases}")


@image.command("verify")
@STORE
def image_verify(store: Path | None) -> None:
    """Fail on any image whose bytes drifted from its pinned digest."""
    from spe.adapters.containers.images import verify_images

    problems = verify_images(_store(store))
    for problem in problems:
        click.echo(f"DRIFT {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo("every image verifies")
