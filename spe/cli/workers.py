"""`spe serve --workers N`: N API processes on one listening socket (uvicorn's own
supervisor restarts a process that dies).

Each process builds the app from the environment (``app_from_environment``, uvicorn's
factory), so the parent writes what `spe serve` was told on its command line into the
environment first. Only API processes that serve and nothing more can be multiplied:

- the work runs in `spe worker` processes (``SPE_DISPATCHER=celery``); with the inline
  dispatcher every process would run and recover the same runs;
- tokens come from an external issuer (``SPE_AUTH_MODE=oidc``); the development issuer
  listens on one port, from one process.

The parent migrates the database once before the processes start. Counters and histograms
of ``/metrics`` are summed over the processes through prometheus-client's multiprocess
mode: each process writes them to files under a private directory the parent makes, and
the scrape reads them all (``spe.observability_wiring``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from spe.config import Settings
from spe.observability_wiring import MULTIPROC_ENV  # prometheus-client reads it at import

LOG_LEVEL_ENV = "SPE_SERVE_LOG_LEVEL"  # the parent's --log-level, for the processes
_OVERRIDES = {"host": "SPE_HOST", "port": "SPE_PORT", "tls_cert_file": "SPE_TLS_CERT_FILE",
              "tls_key_file": "SPE_TLS_KEY_FILE"}


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse ``workers`` > 1 where the processes would not be interchangeable."""
    if workers <= 1:
        return
    if settings.dispatcher != "celery":
        raise ValueError("--workers above 1 needs SPE_DISPATCHER=celery: the API processes "
                         "then only serve, and `spe worker` processes run the work")
    if settings.auth_mode != "oidc":
        raise ValueError("--workers above 1 needs an external issuer (SPE_AUTH_MODE=oidc): "
                         "the development issuer serves from one process")


@contextlib.contextmanager
def worker_environment(overrides: Mapping[str, object], log_level: str) -> Iterator[None]:
    """The command line's settings and a fresh private metrics directory in the
    environment the processes inherit; the directory is removed afterwards."""
    metrics_dir = tempfile.mkdtemp(prefix="spe-metrics-")  # 0700
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ[LOG_LEVEL_ENV] = log_level
    for name, value in overrides.items():
        os.environ[_OVERRIDES[name]] = str(value)
    try:
        yield
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def app_from_environment() -> Any:
    """uvicorn's factory, called in each API process."""
    from spe.adapters.observability.logs import configure_logging
    from spe.app import create_app

    settings = Settings()
    configure_logging(settings.log_format, os.environ.get(LOG_LEVEL_ENV, "info"))
    return create_app(settings, migrate=False).app


def serve_processes(settings: Settings, overrides: Mapping[str, object], workers: int,
                    log_level: str, transport: dict[str, Any]) -> None:
    """``workers`` API processes on the migrated database, through uvicorn's supervisor."""
    import uvicorn

    with worker_environment(overrides, log_level):
        uvicorn.run("spe.cli.workers:app_from_environment", factory=True, workers=workers,
                    host=settings.host, port=settings.port, log_level=log_level,
                    access_log=False, log_config=None, **transport)
