"""A real, throw-away PostgreSQL server for the tests.

``start_postgres(tmpdir)`` runs ``initdb`` and ``pg_ctl`` from the Debian ``postgresql``
package (``/usr/lib/postgresql/<major>/bin``) on a free loopback port with trust auth,
waits until a connection succeeds, creates the database ``spe`` and returns a
``PostgresServer``; ``.stop()`` shuts it down (``pg_ctl stop -m fast``) and removes its files.

PostgreSQL refuses to run as root, so when the tests run as root every server command runs
as the ``postgres`` system user. The data directory and socket live in a short fresh
directory of the system temp dir owned by that user (pytest's temp root is private to root,
and socket paths are limited to ~107 bytes); ``tmpdir`` receives the server log on stop.

``start_postgres(tmpdir, tls=cert)`` (a ``tests.tls_ca.ServerCert``) serves TLS with that
certificate and accepts TCP connections over TLS only (``hostssl`` in ``pg_hba.conf``).

``postgres_or_skip(tmpdir)`` is what fixtures call: it skips the test when no PostgreSQL is
installed, unless ``SPE_REQUIRE_POSTGRES=1`` (set in CI), where it fails instead.
``scripts/install-test-deps.sh`` installs the package.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.tiers import starting
from tests.tls_ca import ServerCert

PG_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
DATABASE = "spe"
COMMAND_TIMEOUT = 120.0
READY_TIMEOUT = 60.0
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries (or no way to run them) on this machine."""


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = [d for d in Path("/").glob(PG_GLOB.lstrip("/"))
             if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)
    return found[-1] if found else None


def _run_as() -> str | None:
    """The user to run server commands as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError as exc:
        raise PostgresUnavailable("running as root and there is no 'postgres' user") from exc
    return SUPERUSER


@dataclass
class PostgresServer:
    bindir: Path
    root: Path  # holds data/, sock/ and server.log; removed by stop()
    port: int
    run_as: str | None
    keep_log_in: Path | None = None  # stop() copies the server log here
    started_in: float = 0.0  # seconds from initdb to the first successful connection
    _stopped: bool = field(default=False, repr=False)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``spe`` database."""
        return self.url_for(DATABASE)

    def _cmd(self, *argv: str,
             timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(argv), user=self.run_as, cwd=self.root, timeout=timeout,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n"
                               f"{result.stdout}{result.stderr}\n{self.log_tail()}")
        return result

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                             dbname=database, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # callers build it from identifiers checked by _IDENT

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not _IDENT.fullmatch(name):
            raise ValueError(f"bad database name {name!r}")
        self.execute(f"CREATE DATABASE {name}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        if not _IDENT.fullmatch(name):
            raise ValueError(f"bad database name {name!r}")
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def reset_schema(self, database: str = DATABASE) -> str:
        """Empty ``database`` (~0.02 s): drop and recreate its ``public`` schema, with every
        table in it (``alembic_version`` too). Returns the database's URL."""
        if not _IDENT.fullmatch(database):
            raise ValueError(f"bad database name {database!r}")
        self.execute("DROP SCHEMA IF EXISTS public CASCADE", database)
        self.execute("CREATE SCHEMA public", database)
        return self.url_for(database)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll until a real connection succeeds (not merely until the port is open)."""
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                     dbname="postgres", connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL not ready after {timeout} s: {last}\n{self.log_tail()}")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._cmd(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir),
                          "-m", "fast", "-w", "-t", "60")
        finally:
            if self.keep_log_in is not None and self.logfile.exists():
                with contextlib.suppress(OSError):
                    self.keep_log_in.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.logfile, self.keep_log_in / "postgres.log")
            shutil.rmtree(self.root, ignore_errors=True)


def _server_root(run_as: str | None) -> Path:
    """A short directory the server user owns, in the system temp dir: pytest's temp root
    is private to root, and unix socket paths are limited to ~107 bytes."""
    root = Path(tempfile.mkdtemp(prefix="spe-pg-"))
    (root / "sock").mkdir(mode=0o700)
    if run_as is not None:
        pw = pwd.getpwnam(run_as)
        for path in (root, root / "sock"):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    return root


def _tls_options(server: PostgresServer, tls: ServerCert) -> str:
    """Copy the certificate and key where the server user owns them (PostgreSQL refuses a
    key others may read), and allow TCP connections over TLS only."""
    for source, name in ((tls.cert, "server.crt"), (tls.key, "server.key")):
        dest = server.root / name
        shutil.copyfile(source, dest)
        dest.chmod(stat.S_IRUSR | stat.S_IWUSR)
        if server.run_as is not None:
            pw = pwd.getpwnam(server.run_as)
            os.chown(dest, pw.pw_uid, pw.pw_gid)
    hba = server.datadir / "pg_hba.conf"
    lines = hba.read_text().splitlines()
    hba.write_text("\n".join("hostssl" + line[len("host"):] if line.startswith("host ")
                             else line for line in lines) + "\n")
    return (f" -c ssl=on -c ssl_cert_file={server.root / 'server.crt'}"
            f" -c ssl_key_file={server.root / 'server.key'}")


def start_postgres(tmpdir: Path, *, attempts: int = 3,
                   tls: ServerCert | None = None) -> PostgresServer:
    """Start a fresh PostgreSQL server and create the database ``spe`` (over TLS only,
    with ``tls``: see the module docstring).

    Raises ``PostgresUnavailable`` when PostgreSQL (or psycopg) is not installed.
    """
    starting("PostgreSQL")
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(f"no initdb/pg_ctl under {PG_GLOB} "
                                  "(install the Debian package 'postgresql': "
                                  "scripts/install-test-deps.sh)")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise PostgresUnavailable("psycopg is not installed (pip install -e '.[postgres]')") \
            from exc
    run_as = _run_as()
    began = time.monotonic()
    server = PostgresServer(bindir, _server_root(run_as), 0, run_as, Path(tmpdir))
    try:
        server._cmd(str(bindir / "initdb"), "-D", str(server.datadir), "-U", SUPERUSER,
                    "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                    "--no-instructions")
        extra = _tls_options(server, tls) if tls is not None else ""
        for attempt in range(attempts):  # a free port may be taken before we bind it
            server.port = free_port()
            options = (f"-p {server.port} -k {server.sockdir} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=200" + extra)
            try:
                server._cmd(str(bindir / "pg_ctl"), "start", "-D", str(server.datadir),
                            "-l", str(server.logfile), "-o", options, "-w", "-t", "60")
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        server.wait_ready()
        server.execute(f"CREATE DATABASE {DATABASE}")
    except BaseException:
        server.stop()
        raise
    server.started_in = time.monotonic() - began
    return server


def postgres_or_skip(tmpdir: Path) -> PostgresServer:
    """``start_postgres``, skipping when PostgreSQL is absent unless SPE_REQUIRE_POSTGRES=1."""
    try:
        return start_postgres(tmpdir)
    except PostgresUnavailable as exc:
        if os.environ.get("SPE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SPE_REQUIRE_POSTGRES=1 but PostgreSQL is unavailable: {exc}")
        pytest.skip(f"PostgreSQL is unavailable: {exc}")


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A database of its own for one test (~0.2 s), dropped afterwards."""
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url.rsplit("/", 1)[-1])
