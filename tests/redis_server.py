"""A real, throw-away Redis for the tests (Debian's ``redis-server``; loopback, no
persistence), started and stopped through ``scripts/redis.sh``.

``start_redis(tmpdir)`` starts one on a free loopback port and returns a ``RedisServer``;
``.stop()`` stops it by pid and ``.start()`` starts it again on the same port (empty: the
Redis-down tests). ``redis_or_skip(tmpdir)`` is what fixtures call: it skips when
``redis-server`` is not installed, unless ``SPE_REQUIRE_REDIS=1`` (set in CI), where it
fails instead. ``scripts/install-test-deps.sh`` installs the package.

``start_redis(tmpdir, tls=(cert, ca_file))`` also serves TLS on a second port
(``tls_port``): ``url()`` is then a ``rediss://localhost:<tls_port>`` URL; the plain port
stays for the script's readiness check.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port
from tests.tiers import starting
from tests.tls_ca import ServerCert

SCRIPT = ROOT / "scripts" / "redis.sh"
COMMAND_TIMEOUT = 60.0
# one Redis database (queue namespace) per Celery deployment of a test session; 0 is left
# to servers of a test's own, and Redis has 16 by default
databases = itertools.cycle(range(1, 16))


class RedisUnavailable(RuntimeError):
    """No redis-server (or redis-cli) on this machine."""


@dataclass
class RedisServer:
    root: Path  # holds redis.pid and redis.log
    port: int
    tls: tuple[ServerCert, Path] | None = None  # server certificate, CA file
    tls_port: int = 0

    def url(self, db: int = 0, host: str = "localhost") -> str:
        if self.tls is not None:
            return f"rediss://{host}:{self.tls_port}/{db}"
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _options(self) -> list[str]:
        if self.tls is None:
            return []
        cert, ca_file = self.tls
        return ["--tls-port", str(self.tls_port), "--tls-cert-file", str(cert.cert),
                "--tls-key-file", str(cert.key), "--tls-ca-cert-file", str(ca_file),
                "--tls-auth-clients", "no"]

    def _script(self, command: str) -> subprocess.CompletedProcess[str]:
        extra = self._options() if command == "start" else []
        return subprocess.run([str(SCRIPT), command, str(self.root), str(self.port), *extra],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              check=False)

    def start(self) -> RedisServer:
        starting("Redis")
        result = self._script("start")
        if result.returncode != 0:
            raise RuntimeError(f"redis.sh start failed: {result.stdout}{result.stderr}")
        return self

    def stop(self) -> None:
        result = self._script("stop")
        if result.returncode != 0:
            raise RuntimeError(f"redis.sh stop failed: {result.stdout}{result.stderr}")

    def running(self) -> bool:
        return self._script("status").returncode == 0

    def log_tail(self, n: int = 3000) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


def start_redis(tmpdir: Path, *, attempts: int = 3,
                tls: tuple[ServerCert, Path] | None = None) -> RedisServer:
    """Start a fresh Redis on a free loopback port (retrying when the port is taken); with
    ``tls``, a TLS port too (see the module docstring)."""
    starting("Redis")
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        raise RedisUnavailable(f"{', '.join(missing)} not found (install the Debian package "
                               "'redis-server': scripts/install-test-deps.sh)")
    for attempt in range(attempts):
        server = RedisServer(Path(tmpdir), free_port(), tls,
                             free_port() if tls is not None else 0)
        try:
            return server.start()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def redis_or_skip(tmpdir: Path) -> RedisServer:
    """``start_redis``, skipping when Redis is absent unless SPE_REQUIRE_REDIS=1."""
    try:
        return start_redis(tmpdir)
    except RedisUnavailable as exc:
        if os.environ.get("SPE_REQUIRE_REDIS") == "1":
            pytest.fail(f"SPE_REQUIRE_REDIS=1 but Redis is unavailable: {exc}")
        pytest.skip(f"Redis is unavailable: {exc}")
