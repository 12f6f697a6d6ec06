"""``spe audit checkpoint`` and the checkpoint half of ``spe audit verify --checkpoint``:
signed checkpoints of the audit chain's head, outside the database
(``spe.services.audit_anchor``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from spe.config import Settings

if TYPE_CHECKING:
    from spe.services.audit_anchor import AuditAnchor


def _anchor(settings: Settings) -> AuditAnchor:
    from spe.adapters.db.session import make_engine, make_sessions
    from spe.audit_wiring import audit_anchor
    from spe.core import make_stores

    try:
        return audit_anchor(settings, make_stores(settings),
                            make_sessions(make_engine(settings.db_url)))
    except ValueError as exc:  # a key file open to others, a bad location
        raise click.ClickException(str(exc)) from exc


def verify_checkpoints(settings: Settings) -> bool:
    """Compare every checkpoint with the chain; echo what each finds; True when none
    finds anything."""
    from spe.audit_wiring import checkpoint_location

    result = _anchor(settings).verify()
    for finding in result.findings:
        click.echo(f"CHECKPOINT {finding}", err=True)
    if not result.findings:
        click.echo(f"{result.checkpoints} checkpoints in {checkpoint_location(settings)} "
                   f"agree with the log")
    return not result.findings


@click.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint of the chain's head now (the service also writes one
    every SPE_AUDIT_CHECKPOINT_SECONDS and when it stops)."""
    from pydantic import ValidationError

    from spe.cli.settings_errors import describe

    try:
        settings = Settings()
    except ValidationError as exc:  # name the variable, never the value (a secret?)
        raise click.ClickException(f"invalid settings: {describe(exc)}") from None
    written = _anchor(settings).checkpoint()
    if written is None:
        click.echo("the audit log is empty: nothing to checkpoint")
    else:
        click.echo(f"checkpoint: {written.count} events, head row {written.head_id}, "
                   f"hash {written.head_hash}")
