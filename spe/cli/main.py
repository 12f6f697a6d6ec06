"""The ``spe`` command: server side (serve, db, catalog, dev) and user side (run)."""

from __future__ import annotations

import json
import logging
import os
import ssl
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from spe.cli import audit_anchor as audit_anchor_commands
from spe.cli import backup as backup_commands
from spe.cli import data as data_commands
from spe.cli import images as image_commands
from spe.cli import login as login_commands
from spe.cli import release as release_commands
from spe.cli import runs as run_commands
from spe.cli import tasks as task_commands
from spe.cli.errors import handled
from spe.config import Settings
from spe.domain.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


PRIVATE_UMASK = 0o077


def _write_privately() -> None:
    """Everything the service writes is private to its account (umask 077). What SLURM jobs
    of a project's group must share is opened to that group, never to others, by the
    SLURM executor (``spe/adapters/executors/workdir.py``)."""
    os.umask(PRIVATE_UMASK)


def _state_paths(settings: Settings) -> list[Path]:
    """SPE_HOME and, with SQLite, the database file."""
    paths = [settings.home]
    if settings.db_url.startswith("sqlite:///"):
        paths.append(Path(settings.db_url[len("sqlite:///"):]))
    return paths


def _refuse_open_state(settings: Settings) -> None:
    """Stop unless SPE_HOME and the SQLite database are closed to other users (on a SLURM
    cluster SPE_HOME may be 0711: others may pass through to their run, not read)."""
    for path in _state_paths(settings):
        if not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            what = "readable" if mode & stat.S_IROTH else "writable"
            raise click.ClickException(
                f"{path} is {what} by other users (mode {mode:04o}): the service's state "
                f"must be private; run `chmod o-rw {path}` (or chmod 700) and start again")


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    from spe.cli.settings_errors import describe

    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates them
    except ValidationError as exc:  # name the environment variable, not the field
        raise click.ClickException(f"invalid settings: {describe(exc)}") from None


def _configure_logging(settings: Settings, level: str) -> None:
    """Text or JSON lines (SPE_LOG_FORMAT), with request and run ids."""
    from spe.adapters.observability.logs import configure_logging

    configure_logging(settings.log_format, level)


class _Cli(click.Group):
    """The root group: every command, of every group, fails as ``spe.cli.errors`` says
    (one line on stderr, a documented exit code), never with a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        with handled():
            return super().invoke(ctx)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spe", message="spe %(version)s")
def main() -> None:
    """Secure Processing Environment: GA4GH WES service, catalog and client.

    Exit codes: 0 ok, 1 failure, 2 usage, 3 service unreachable, 130 interrupted."""


@main.command()
@click.option("--host", default=None, help="Bind address (default: SPE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: SPE_PORT or 8080).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Serve HTTPS with this certificate chain, PEM (default: "
              "SPE_TLS_CERT_FILE; needs --tls-key).")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The certificate's private key, PEM (default: SPE_TLS_KEY_FILE).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="API processes on the one port (above 1: needs SPE_DISPATCHER=celery "
              "and SPE_AUTH_MODE=oidc).")
def serve(host: str | None, port: int | None, tls_cert: Path | None, tls_key: Path | None,
          log_level: str, workers: int) -> None:
    """Serve the API with the embedded worker (state under SPE_HOME)."""
    _write_privately()
    overrides = {k: v for k, v in {"host": host, "port": port, "tls_cert_file": tls_cert,
                                   "tls_key_file": tls_key}.items() if v is not None}
    settings = _settings(**overrides)
    _configure_logging(settings, log_level)  # first: importing the app may warn
    import uvicorn

    from spe.app import create_app
    from spe.cli.serving import migrate_apart, uvicorn_options
    from spe.cli.workers import check_workers, serve_processes

    _refuse_open_state(settings)
    try:
        check_workers(settings, workers)
        transport = uvicorn_options(settings)
    except (OSError, ssl.SSLError) as exc:  # unreadable or mismatched certificate and key
        raise click.ClickException(f"cannot use the TLS certificate: {exc}") from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.getLogger("spe").info("settings: %s", settings.redacted())
    if not migrate_apart():
        raise click.ClickException("the database migration failed (its error is above)")
    if workers > 1:
        serve_processes(settings, overrides, workers, log_level, transport)
        return
    try:
        service = create_app(settings, migrate=False)
    except (ValueError, DomainError) as exc:  # unsafe configuration, catalog drift
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(service.app, host=settings.host, port=settings.port, log_level=log_level,
                access_log=False, log_config=None,  # our handler (SPE_LOG_FORMAT)
                **transport)


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="Threads running start/cancel steps (default: SPE_WORKERS).")
@click.option("--log-level", default="info", show_default=True)
def worker(concurrency: int | None, log_level: str) -> None:
    """Run a Celery worker (SPE_DISPATCHER=celery): start and cancel steps from Redis, and
    the reconciler. Start as many as needed, on any host that shares SPE_HOME's runs."""
    _write_privately()
    settings = _settings()
    _configure_logging(settings, log_level)
    from spe.app import create_worker

    logging.getLogger("spe").info("settings: %s", settings.redacted())
    try:
        celery_worker = create_worker(settings)
    except (ValueError, DomainError) as exc:  # wrong dispatcher, catalog drift
        raise click.ClickException(str(exc)) from exc
    sys.exit(celery_worker.run(concurrency or settings.workers, log_level))


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the configured database."""
    from spe.adapters.db.session import upgrade

    _write_privately()
    settings = _settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    click.echo("database is at the newest revision")


@main.group()
def catalog() -> None:
    """Workflow catalog commands."""


@catalog.command("verify")
@click.option("--path", type=click.Path(path_type=Path), default=None,
              help="Catalog folder (default: SPE_CATALOG_DIR).")
def catalog_verify(path: Path | None) -> None:
    """Fail on any drift between manifests and bundles."""
    from spe.adapters.catalog import verify_catalog

    try:
        root = path or _settings().catalog_root()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    from spe.adapters.containers.images import verify_images

    problems = [*map(str, verify_catalog(root)), *verify_images(_settings().images_dir)]
    for problem in problems:
        click.echo(f"DRIFT {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"catalog {root}: every entry verifies (and every TES image)")


@catalog.command("digest")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
def catalog_digest(bundle: Path) -> None:
    """Print the bundle digest of a folder (to pin it in a manifest)."""
    from spe.adapters.catalog import directory_digest

    click.echo(directory_digest(bundle))


@main.group()
def policy() -> None:
    """Policy file commands."""


@policy.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def policy_check(path: Path) -> None:
    """Validate a policy file; list every problem with its JSON pointer."""
    from spe.adapters.policy import load_policy

    try:
        loaded = load_policy(path)
    except DomainError as exc:
        for pointer, message in getattr(exc, "errors", []) or [("", str(exc))]:
            click.echo(f"INVALID {pointer or '/'}: {message}", err=True)
        sys.exit(1)
    click.echo(f"policy {path}: {len(loaded.projects)} projects, {len(loaded.roles)} role "
               f"rules, {len(loaded.datasets)} datasets")


def _echo_invalid(exc: DomainError) -> None:
    for pointer, message in getattr(exc, "errors", []) or [("", str(exc))]:
        click.echo(f"INVALID {pointer or '/'}: {message}", err=True)


_BASE_OPTION = click.option(
    "--base", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Base BiBiGrid configuration, with site-profile.schema.json beside it "
    "(default: bibigrid/bibigrid.yaml of this repository).")


@main.group()
def site() -> None:
    """BiBiGrid site profiles (bibigrid/sites): check offline, render for BiBiGrid."""


@site.command("check")
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_BASE_OPTION
@click.option("--strict", is_flag=True, help="Unconfirmed example values are errors.")
def site_check(profile: Path, base: Path | None, strict: bool) -> None:
    """Validate a site profile; list every problem with its JSON pointer."""
    from spe.adapters.site_profile import check_site_profile
    from spe.domain.site_profile import summary

    try:
        report = check_site_profile(profile, base, strict=strict)
    except DomainError as exc:
        _echo_invalid(exc)
        sys.exit(1)
    for problem in report.warnings:
        click.echo(f"UNCONFIRMED {problem.pointer}: {problem.message}", err=True)
    for problem in report.errors:
        click.echo(f"INVALID {problem.pointer or '/'}: {problem.message}", err=True)
    if not report.ok or report.document is None:
        sys.exit(1)
    click.echo(f"profile {profile}: {summary(report.document, len(report.warnings))}")


@site.command("render")
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for bibigrid.yaml (mode 0600, holds secrets) and spe_cluster.yaml.")
@_BASE_OPTION
@click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Policy file: its projects become the role's spe_projects.")
def site_render(profile: Path, out: Path, base: Path | None, policy: Path | None) -> None:
    """Merge a site profile into the base and resolve its secrets, for BiBiGrid."""
    from spe.adapters.site_profile import render_site

    try:
        written = render_site(profile, out, base, policy=policy)
    except DomainError as exc:
        _echo_invalid(exc)
        sys.exit(1)
    for path in written:
        click.echo(f"wrote {path}")


@main.group()
def dev() -> None:
    """Development helpers of the embedded default."""


@dev.command("token")
@click.option("--user", required=True, help="User name the token is for.")
@click.option("--lifetime", type=int, default=3600, show_default=True, help="Seconds.")
@click.option("--group", "groups", multiple=True, default=["spe:demo"], show_default=True,
              help="Group entitlement to include (e.g. spe:demo:role=reviewer, "
              "spe:operators); repeatable.")
def dev_token(user: str, lifetime: int, groups: tuple[str, ...]) -> None:
    """Print a bearer token from the development issuer (embedded default only)."""
    from spe.adapters.auth.dev_issuer import DevIssuer
    from spe.adapters.policy import dev_entitlement

    settings = _settings()
    if settings.auth_mode != "dev":
        raise click.ClickException("the development issuer is disabled (SPE_AUTH_MODE=oidc)")
    from spe.adapters.auth.dev_issuer import KEY_FILE, STATE_DIR

    if not (settings.home / STATE_DIR / KEY_FILE).is_file():
        raise click.ClickException(
            f"no development issuer key in SPE_HOME={settings.home}: `spe serve` makes it "
            "at its first start; set SPE_HOME to the home of the running server (a token "
            "signed with a new key would be refused)")
    try:
        issuer = DevIssuer(settings.home, port=settings.dev_issuer_port)
        claims = {"eduperson_entitlement": [dev_entitlement(g) for g in groups]}
        click.echo(issuer.mint(user, settings.oidc_audience, lifetime, extra_claims=claims))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
def audit() -> None:
    """Audit log commands: check the hash chain, export the events."""


def _audit_sessions() -> sessionmaker[Session]:
    from spe.adapters.db.session import make_engine, make_sessions

    return make_sessions(make_engine(_settings().db_url))


@audit.command("verify")
@click.option("--checkpoint", is_flag=True, help="Also compare the signed checkpoints "
              "(SPE_AUDIT_CHECKPOINT_LOCATION): finds newest rows cut off and rollbacks.")
def audit_verify(checkpoint: bool) -> None:
    """Recompute the hash chain; exit 1 naming every row that breaks it."""
    from sqlalchemy.exc import SQLAlchemyError

    from spe.adapters.db import audit_chain

    sessions = _audit_sessions()
    try:
        problems, total = audit_chain.verify(sessions), audit_chain.count(sessions)
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot read the audit log ({type(exc).__name__}); "
                                   "is the database at the newest revision "
                                   "(spe db upgrade)?") from exc
    for problem in problems:
        click.echo(f"TAMPERED {problem}", err=True)
    anchored = audit_anchor_commands.verify_checkpoints(_settings()) if checkpoint else True
    if problems or not anchored:
        sys.exit(1)
    click.echo(f"{total} events, chain intact")


def _instant(_ctx: click.Context, _param: click.Parameter,
             value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 date-time: {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@audit.command("export")
@click.option("--since", callback=_instant, default=None,
              help="Only events at or after this ISO 8601 instant (no offset: UTC).")
def audit_export(since: datetime | None) -> None:
    """Write the events (with their hashes) as JSON lines to stdout, in chain order."""
    from spe.adapters.db import audit_chain

    for event in audit_chain.export(_audit_sessions(), since=since):
        click.echo(json.dumps(event, ensure_ascii=False, sort_keys=True))


audit.add_command(audit_anchor_commands.audit_checkpoint)
main.add_command(backup_commands.backup)
main.add_command(backup_commands.restore)
main.add_command(run_commands.run)
main.add_command(image_commands.image)
main.add_command(task_commands.task)
main.add_command(release_commands.release)
main.add_command(data_commands.data)
main.add_command(login_commands.login)
main.add_command(login_commands.logout)

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
