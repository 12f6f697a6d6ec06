"""The Celery dispatcher: publishes start/cancel messages by task name to a Redis broker;
``spe worker`` processes consume them (``consume``), handing each to the worker's
``handle(kind, run_id)`` (``spe.workers.worker``).

Messages carry a run id only; a worker re-reads the run. The database is the queue of
record: every worker's reconciler starts QUEUED runs and finishes CANCELING ones, so a
message is only a prompt. Publishing is therefore best effort: when the broker cannot be
reached within a short timeout, the failure is logged and the run waits for a reconciler
(a delay, never a loss). ``ready()`` is the cheap check the API makes before it accepts a
submission, so that a submission fails fast (503) while the broker is down.

Delivery is at least once: tasks are acknowledged late (after the step ran), a worker
holds one message per thread (prefetch multiplier 1), and a message that a killed worker
took is delivered again once the broker's ``visibility_timeout`` has passed. The steps
are idempotent (compare-and-set transitions, ``Executor.find`` before ``submit``), so a
repeated message, or a long step redelivered while it still runs, changes nothing.

A ``rediss://`` URL is Redis over TLS: the broker connection, a result backend (should one
be configured) and the readiness ping all require the server's certificate to chain to
``ca_file`` (the system CAs when unset) and to name the host (``tls_options``).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import Celery
from kombu.exceptions import KombuError

log = logging.getLogger(__name__)

START_TASK = "spe.run.start"
CANCEL_TASK = "spe.run.cancel"
QUEUE = "spe"


@dataclass(frozen=True)
class BrokerOptions:
    """``timeout`` bounds every connect, ping and publish attempt (seconds);
    ``visibility_timeout`` is how long a taken, unacknowledged message stays invisible
    before the broker hands it to another worker."""

    url: str
    visibility_timeout: float = 60.0
    timeout: float = 2.0
    ca_file: str = ""


def tls_options(opts: BrokerOptions) -> dict[str, Any]:
    """redis-py's TLS arguments for a ``rediss://`` URL (verified: certificate and host
    name); empty for ``redis://``."""
    if not opts.url.startswith("rediss://"):
        return {}
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": opts.ca_file or None,
            "ssl_check_hostname": True}


def redact_url(url: str) -> str:
    """``url`` with its password (if any) masked, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def celery_config(opts: BrokerOptions) -> dict[str, Any]:
    restore_every = max(1, int(opts.visibility_timeout // 4))
    tls = tls_options(opts)
    return {
        "broker_url": opts.url,
        **({"broker_use_ssl": tls, "redis_backend_use_ssl": tls} if tls else {}),
        "broker_connection_timeout": opts.timeout,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a worker waits for the broker forever
        "broker_transport_options": {
            "visibility_timeout": opts.visibility_timeout,
            "socket_connect_timeout": opts.timeout,
            "socket_timeout": opts.timeout,
            "unacked_restore_interval": restore_every,  # look for abandoned messages
            "unacked_restore_throttle": 1,
        },
        "task_default_queue": QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0,
                                      "interval_step": 0.2, "interval_max": 0.2},
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "worker_enable_remote_control": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def make_celery(opts: BrokerOptions) -> Celery:
    """A Celery app object for publishing (API) and consuming (workers)."""
    app = Celery("spe", set_as_current=False)
    app.conf.update(celery_config(opts))
    return app


class CeleryDispatcher:
    """Implements the ``Dispatcher`` port over a Celery app; see the module docstring."""

    def __init__(self, app: Celery, timeout: float = 2.0) -> None:
        self._app = app
        url = str(app.conf.broker_url)
        self._where = redact_url(url)
        tls = dict(app.conf.broker_use_ssl or {}) if url.startswith("rediss://") else {}
        self._ping = redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                          socket_timeout=timeout, **tls)

    @property
    def app(self) -> Celery:
        return self._app

    def ready(self) -> bool:
        """True when the broker answers a ping within the timeout."""
        try:
            return bool(self._ping.ping())
        except (redis.RedisError, OSError) as exc:
            log.warning("broker %s unavailable: %s", self._where, type(exc).__name__)
            return False

    def enqueue(self, run_id: str) -> None:
        self._send(START_TASK, run_id)

    def enqueue_cancel(self, run_id: str) -> None:
        self._send(CANCEL_TASK, run_id)

    def _send(self, task: str, run_id: str) -> None:
        try:
            self._app.send_task(task, args=(run_id,), queue=QUEUE, ignore_result=True)
        except (KombuError, redis.RedisError, OSError) as exc:
            log.warning("could not publish %s for run %s to %s (%s); a worker's reconciler "
                        "will pick the run up from the database", task, run_id, self._where,
                        type(exc).__name__)

    def close(self) -> None:
        self._ping.close()


def consume(app: Celery, handle: Callable[[str, str], None], concurrency: int,
            loglevel: str = "INFO") -> int:
    """Register the start and cancel tasks, each handing ``(kind, run_id)`` to ``handle``,
    and consume on ``concurrency`` threads until a signal stops the worker (SIGTERM:
    finish the running steps). Returns the worker's exit code."""

    def start(run_id: str) -> None:
        handle("start", run_id)

    def cancel(run_id: str) -> None:
        handle("cancel", run_id)

    app.task(name=START_TASK)(start)
    app.task(name=CANCEL_TASK)(cancel)
    worker = app.Worker(
        pool="threads", concurrency=concurrency, loglevel=loglevel.upper(), queues=[QUEUE],
        hostname=f"spe-{os.getpid()}@{socket.gethostname()}", quiet=True,
        without_gossip=True, without_mingle=True, without_heartbeat=True)
    worker.start()
    return int(worker.exitcode or 0)
