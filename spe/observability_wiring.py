"""Wires observability into a process (part of the composition root): the metrics registry
and its collectors, the API's request observer and ``/metrics``, the readiness checks of
``/readyz`` for what this deployment uses, and a worker's own metrics port."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from connexion import FlaskApp
from connexion.middleware import MiddlewarePosition
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from spe.adapters.db.stats import release_backlog, span_histograms, state_counts
from spe.adapters.db.tables import RunRow
from spe.adapters.observability import readiness
from spe.adapters.observability.metrics import (
    DURATION_BOUNDS,
    LATENCY_BOUNDS,
    DatabaseCollector,
    JobSource,
    ReconcilerCollector,
)
from spe.api.observability import (
    HttpMetrics,
    RequestObserver,
    flask_request_id,
    flask_request_id_done,
    metrics_view,
    readyz_view,
    token_digest,
)
from spe.config import Settings
from spe.core import Core
from spe.domain.airlock import ReleaseState
from spe.domain.models import RUN, TASK
from spe.domain.states import RunState
from spe.workers.reconciler import Reconciler

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by `spe serve --workers N` (spe.cli.workers)

log = logging.getLogger(__name__)


def job_source(core: Core, kind: str) -> JobSource:
    """One kind of job (the ``kind`` column of the jobs table: WES runs, TES tasks) for
    the metrics."""
    only = [RunRow.kind == kind]
    return JobSource(
        kind=kind, states=[s.value for s in RunState],
        counts=lambda: state_counts(core.sessions, RunRow.state, only),
        latency=lambda: span_histograms(core.sessions, RunRow.created_at, RunRow.start_time,
                                        [], LATENCY_BOUNDS, where=only),
        durations=lambda: span_histograms(core.sessions, RunRow.start_time, RunRow.end_time,
                                          [RunRow.engine, RunRow.state], DURATION_BOUNDS,
                                          where=only))


def job_sources(core: Core) -> list[JobSource]:
    """Every kind of job this service runs: WES runs and TES tasks."""
    return [job_source(core, RUN), job_source(core, TASK)]


def add_observability(app: FlaskApp, settings: Settings, core: Core,
                      reconciler: Reconciler | None) -> HttpMetrics:
    """The request observer (outermost middleware: add it before the others), the Flask
    hooks binding the request id, and ``GET /metrics``. ``reconciler``: the one this
    process runs, if any. Returns the HTTP metrics (the authenticator counts into them)."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):  # `spe serve --workers N`: summed over the processes
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        http = HttpMetrics(CollectorRegistry())  # its values go to the shared files
    else:
        ProcessCollector(registry=registry)
        http = HttpMetrics(registry)
    registry.register(DatabaseCollector(job_sources(core), lambda: release_backlog(core.sessions),
                                        [s.value for s in ReleaseState]))
    if reconciler is not None:
        registry.register(ReconcilerCollector(lambda: reconciler.last_success))
    app.add_middleware(RequestObserver, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       metrics=http, access=settings.access_log)
    app.app.before_request(flask_request_id)
    app.app.teardown_request(flask_request_id_done)
    token = settings.metrics_token
    digest = token_digest(token.get_secret_value()) if token is not None else None
    app.add_url_rule("/metrics", "metrics", metrics_view(registry, digest, http.auth_failed))
    return http


def readiness_checks(settings: Settings, core: Core,
                     queue_ready: Callable[[], bool]) -> list[readiness.Check]:
    """What this deployment uses: the database always; Redis with Celery; the SLURM
    controller with the SLURM executor; the storage zones; the IdP with OIDC."""
    cache = settings.readiness_cache_seconds
    checks = [readiness.Check("database", readiness.database(core.db))]
    if settings.dispatcher == "celery":
        checks.append(readiness.Check("redis", readiness.broker(queue_ready)))
    if settings.executor == "slurm":
        timeout = min(5.0, settings.slurm_command_timeout_seconds)
        checks.append(readiness.Check("slurm", readiness.slurm_controller(
            settings.slurm_bin_dir / "scontrol", timeout), cache))
    roots = zone_roots(settings, core)
    checks.append(readiness.Check("storage", readiness.storage(lambda: roots, core.stores),
                                  cache))
    if settings.auth_mode == "oidc":
        checks.append(readiness.Check("identity_provider", readiness.discovery(
            settings.oidc_issuer, settings.oidc_http_timeout_seconds), cache))
    return checks


def zone_roots(settings: Settings, core: Core) -> list[str]:
    """Where the quarantine and outbox of every project of the policy are: its own
    ``storage.<zone>``, else the zone's default root (a project's folder in it is made on
    first use). Nothing is created here for a configured root: a share that is not
    mounted must fail the check, not be replaced by a local folder. The default roots in
    SPE_HOME belong to the service and are made now."""
    found: list[str] = []
    for zone, configured in (("quarantine", settings.quarantine_dir),
                             ("outbox", settings.outbox_dir)):
        root = configured or settings.home / zone
        if configured is None:
            root.mkdir(parents=True, exist_ok=True)
        for project in core.policy.projects.values():
            found.append(project.storage.get(zone) or str(root))
        found.append(str(root))
    return sorted(set(found))


def readiness_view(settings: Settings, core: Core,
                   queue_ready: Callable[[], bool]) -> Callable[[], Any]:
    checks = readiness_checks(settings, core, queue_ready)
    return readyz_view(lambda: readiness.run_checks(checks),
                       frozenset(settings.readiness_optional))


def serve_worker_metrics(settings: Settings, reconciler: Reconciler) -> None:
    """A `spe worker`'s own metrics (its reconciler's lag, its process) on
    ``worker_metrics_port``, when set."""
    if not settings.worker_metrics_port:
        return
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(ReconcilerCollector(lambda: reconciler.last_success))
    try:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host,
                          registry=registry)
    except OSError as exc:  # e.g. a second worker on this host with the same port
        log.error("worker metrics: cannot listen on %s:%s (%s); this worker serves no "
                  "metrics (give each worker on a host its own SPE_WORKER_METRICS_PORT)",
                  settings.worker_metrics_host, settings.worker_metrics_port,
                  type(exc).__name__)
