"""Copies of the database while the service runs: SQLite through its online backup API
(a consistent snapshot, WAL included), PostgreSQL through ``pg_dump``/``pg_restore``
(custom format), each an argv list with a timeout. The password never reaches argv: it
goes to the child in ``PGPASSWORD`` (or comes from the service account's ``~/.pgpass``)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from spe.adapters.db.session import make_engine

SQLITE_PREFIX = "sqlite:///"
_STDERR_TAIL = 2000


class BackupError(RuntimeError):
    """A copy or a restore that could not be made; the message says why."""


def is_sqlite(url: str) -> bool:
    return url.startswith(SQLITE_PREFIX)


def sqlite_path(url: str) -> Path:
    return Path(url[len(SQLITE_PREFIX):])


def copy_sqlite(src: Path, dest: Path) -> None:
    """A consistent copy of the live database ``src`` into the new file ``dest``."""
    if not src.is_file():
        raise BackupError(f"no database at {src}")
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def restore_sqlite(copy: Path, dest: Path) -> None:
    """Replace the database ``dest`` (and its WAL) with ``copy``."""
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in (dest, dest.with_name(dest.name + "-wal"), dest.with_name(dest.name + "-shm")):
        stale.unlink(missing_ok=True)
    copy_sqlite(copy, dest)


def has_tables(url: str) -> bool:
    """Whether the database at ``url`` holds any table (a restore would overwrite it)."""
    engine = make_engine(url)
    try:
        return bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI for ``url`` without its password, and the environment carrying it."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    # URL.set() takes None as "unchanged": a NamedTuple's _replace really drops it
    uri = parsed.set(drivername="postgresql")._replace(password=None)
    return uri.render_as_string(hide_password=False), env


def _tool(name: str, bin_dir: Path | None) -> str:
    if bin_dir is not None:
        return str(bin_dir / name)
    found = shutil.which(name)
    if found is None:
        newest = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else -1)
        if not newest:
            raise BackupError(f"{name} not found: install the PostgreSQL client or set "
                              "SPE_PG_BIN_DIR")
        return str(newest[-1])
    return found


def _run(argv: list[str], env: dict[str, str], timeout: float) -> None:
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{Path(argv[0]).name} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise BackupError(f"cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} exited {result.returncode}: "
                          f"{result.stderr.strip()[-_STDERR_TAIL:]}")


def dump_postgres(url: str, dest: Path, bin_dir: Path | None, timeout: float) -> None:
    """``pg_dump`` of the database at ``url`` into ``dest`` (custom format: one snapshot)."""
    uri, env = _libpq(url)
    _run([_tool("pg_dump", bin_dir), "--format=custom", "--no-owner", "--no-privileges",
          f"--file={dest}", f"--dbname={uri}"], env, timeout)


def restore_postgres(url: str, dump: Path, bin_dir: Path | None, timeout: float, *,
                     clean: bool) -> None:
    """``pg_restore`` of ``dump`` into the database at ``url``, in one transaction;
    ``clean`` first drops the objects the dump holds."""
    uri, env = _libpq(url)
    argv = [_tool("pg_restore", bin_dir), "--no-owner", "--no-privileges", "--exit-on-error",
            "--single-transaction", f"--dbname={uri}"]
    if clean:
        argv += ["--clean", "--if-exists"]
    _run([*argv, str(dump)], env, timeout)
