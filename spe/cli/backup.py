"""``spe backup DEST`` and ``spe restore SRC`` (``spe.adapters.backup``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from spe.config import Settings

if TYPE_CHECKING:
    from spe.adapters.backup.archive import Layout


def _settings() -> Settings:
    os.umask(0o077)  # everything written here is private
    from pydantic import ValidationError

    from spe.cli.settings_errors import describe

    try:
        return Settings()
    except ValidationError as exc:  # name the variable, never the value (a secret?)
        raise click.ClickException(f"invalid settings: {describe(exc)}") from None


def layout(settings: Settings, *, zones: bool = True) -> Layout:
    """Where this deployment keeps what a backup holds."""
    from spe.adapters.backup.archive import Layout
    from spe.audit_wiring import checkpoint_key_file

    roots = {"quarantine": settings.quarantine_dir or settings.home / "quarantine",
             "outbox": settings.outbox_dir or settings.home / "outbox"} if zones else {}
    try:
        catalog = settings.catalog_root()
    except ValueError as exc:  # no catalog configured
        raise click.ClickException(str(exc)) from exc
    return Layout(db_url=settings.db_url, home=settings.home,
                  catalog=catalog,
                  checkpoint_key=checkpoint_key_file(settings),
                  page_key=None if settings.secret_key else settings.home / "secret.key",
                  policy=settings.policy_file, zones=roots,
                  pg_bin_dir=settings.pg_bin_dir, timeout=settings.backup_timeout_seconds)


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--no-zones", is_flag=True, help="Leave out the files of the default "
              "quarantine and outbox (back them up with the storage's own tools).")
def backup(dest: Path, no_zones: bool) -> None:
    """Copy the service's state into DEST (new or empty) while it runs: the database
    (SQLite backup API or pg_dump), the keys, the policy, the catalog manifests and the
    default quarantine and outbox, with a manifest of sha256 digests."""
    from spe.adapters.backup.archive import backup as write_backup
    from spe.adapters.backup.database import BackupError

    settings = _settings()
    try:
        manifest = write_backup(layout(settings, zones=not no_zones), dest)
    except (BackupError, OSError) as exc:
        raise click.ClickException(f"backup failed: {exc}") from exc
    files = manifest["files"]
    size = sum(entry["size"] for entry in files.values())
    click.echo(f"backup {dest}: {len(files)} files, {size} bytes, {manifest['database']} "
               "database")
    click.echo("not in it: projects whose policy names their own storage.quarantine or "
               "storage.outbox, and the datasets (back those up where they live)")


@click.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite a home that is not empty, a "
              "database with tables, and files that differ.")
def restore(src: Path, force: bool) -> None:
    """Restore the backup in SRC (its manifest verified first) into this deployment.
    Stop the service first."""
    from spe.adapters.backup.database import BackupError
    from spe.adapters.backup.restore import restore as run_restore

    settings = _settings()
    try:
        notes = run_restore(layout(settings), src, force=force)
    except (BackupError, OSError) as exc:
        raise click.ClickException(f"restore failed: {exc}") from exc
    for note in notes:
        click.echo(f"NOTE {note}", err=True)
    click.echo(f"restored {src} into {settings.home}; now run `spe audit verify "
               "--checkpoint`: a checkpoint newer than the backup reports the events "
               "written after it (lost with this restore)")
