"""The API edge's observability: request ids, HTTP latency by operation, the access log,
``GET /metrics`` behind a scrape token, and ``GET /readyz`` from the deployment's checks.

- Request ids: a client's ``X-Request-Id`` is kept when it is 1-128 characters of
  ``[A-Za-z0-9._:-]``, else a new one is made; it is answered in ``X-Request-Id`` and every
  log line of the request carries it (``spe.domain.log_context``).
- Latency: ``spe_http_request_duration_seconds{operation, status}``, where ``operation``
  is the connexion operationId (or a fixed name for the plain routes, ``unrouted`` for the
  rest) and ``status`` the class (``2xx``...): never a raw path, so ids in paths cannot
  grow the label set.
- ``/metrics``: the scrape token arrives as ``Authorization: Bearer``; only its SHA-256 is
  kept, and digests are compared in constant time. Without a configured token ``/metrics``
  answers 404."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import flask
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spe.domain import log_context

log = logging.getLogger(__name__)
access_log = logging.getLogger("spe.access")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HTTP_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PLAIN_ROUTES = {"/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics",
                # answered before routing when anonymous (spe.api.public_info)
                "/ga4gh/wes/v1/service-info": "GetServiceInfo"}
PREFIX_ROUTES = (("/spe/ui", "ui"), ("/ga4gh/wes/v1/ui", "swagger_ui"),
                 ("/spe/v1/ui", "swagger_ui"), ("/ga4gh/wes/v1/openapi", "openapi"),
                 ("/spe/v1/openapi", "openapi"))
# failed authentications, by a reason from this closed list (the verifier's own words vary)
AUTH_REASONS = ("missing", "malformed", "too_long", "expired", "audience", "issuer",
                "signature", "inactive", "rate_limited", "metrics_token", "other")
_REASON_WORDS = (("authentication required", "missing"), ("must be 'bearer", "malformed"),
                 ("malformed", "malformed"), ("too long", "too_long"),
                 ("too many", "rate_limited"), ("expired", "expired"),
                 ("audience", "audience"), ("issuer", "issuer"), ("signature", "signature"),
                 ("signing key", "signature"), ("key id", "signature"),
                 ("algorithm", "signature"), ("not active", "inactive"),
                 ("rejected", "inactive"))


def auth_reason(message: str) -> str:
    """The label of a failed authentication's reason (one of ``AUTH_REASONS``)."""
    lowered = message.lower()
    return next((label for words, label in _REASON_WORDS if words in lowered), "other")


class HttpMetrics:
    """The API process's own metrics, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.latency = Histogram("spe_http_request_duration_seconds",
                                 "HTTP requests by operation and status class",
                                 ["operation", "status"], buckets=HTTP_BOUNDS,
                                 registry=registry)
        self.auth_failures = Counter("spe_auth_failures_total",
                                     "Failed authentications by reason", ["reason"],
                                     registry=registry)
        for reason in AUTH_REASONS:
            self.auth_failures.labels(reason)

    def auth_failed(self, message: str) -> None:
        """Count a failure: ``message`` is a reason label or the verifier's words."""
        label = message if message in AUTH_REASONS else auth_reason(message)
        self.auth_failures.labels(label).inc()


def operation_of(scope: Scope) -> str:
    routing = (scope.get("extensions") or {}).get("connexion_routing") or {}
    operation = routing.get("operation_id")
    if isinstance(operation, str) and operation:
        return operation.rsplit(".", maxsplit=1)[-1]
    path = str(scope.get("path", ""))  # a plain route's fixed name, never the path itself
    if path in PLAIN_ROUTES:
        return str(PLAIN_ROUTES[path])
    return next((name for prefix, name in PREFIX_ROUTES if path.startswith(prefix)),
                "unrouted")


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-request-id":
            text = str(value.decode("latin-1"))
            if REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestObserver:
    """ASGI middleware (outermost): the request id, the latency histogram, the access log."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, access: bool = False) -> None:
        self.app, self.metrics, self.access = app, metrics, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() != b"x-request-id"]
        scope = {**scope, "headers": [*headers, (b"x-request-id", rid.encode())],
                 "extensions": dict(scope.get("extensions") or {})}
        status = [500]

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                message = {**message, "headers": [*(message.get("headers") or ()),
                                                  (b"x-request-id", rid.encode())]}
            await send(message)

        began = time.perf_counter()
        with log_context.bound(log_context.request_id, rid):
            try:
                await self.app(scope, receive, answer)
            finally:
                self._observe(scope, status[0], time.perf_counter() - began)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        operation = operation_of(scope)
        self.metrics.latency.labels(operation, f"{status // 100}xx").observe(seconds)
        if not self.access:
            return
        level = logging.ERROR if status >= 500 else logging.INFO
        client = scope.get("client") or ("", 0)
        access_log.log(level, "%s %s %s %.1f ms", scope.get("method"), scope.get("path"),
                       status, seconds * 1000, extra={
                           "event": "http.request", "method": scope.get("method"),
                           "path": scope.get("path"), "operation": operation,
                           "status": status, "duration_ms": round(seconds * 1000, 2),
                           "client": client[0]})


def flask_request_id() -> None:
    """Flask runs views in worker threads; the request id travels in the header that
    ``RequestObserver`` set, and is bound here for the view's log lines."""
    flask.g.spe_request_id_token = log_context.request_id.set(
        flask.request.headers.get("X-Request-Id", ""))


def flask_request_id_done(_exc: BaseException | None) -> None:
    token = flask.g.pop("spe_request_id_token", None)
    if token is not None:
        log_context.request_id.reset(token)


def token_digest(configured: str) -> bytes:
    """The SHA-256 to compare with: ``sha256:<hex>`` as given, else of the token."""
    if configured.startswith("sha256:"):
        return bytes.fromhex(configured[len("sha256:"):])
    return hashlib.sha256(configured.encode()).digest()


def metrics_view(registry: CollectorRegistry, digest: bytes | None,
                 failed: Callable[[str], None]) -> Callable[[], Any]:
    """``GET /metrics``: 404 when no token is configured, 401 without the right one."""

    def metrics() -> Any:
        if digest is None:
            return _error(404, "metrics are disabled (set SPE_METRICS_TOKEN)")
        scheme, _, presented = (flask.request.headers.get("Authorization") or "").partition(" ")
        given = hashlib.sha256(presented.strip().encode()).digest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, digest):
            failed("metrics_token")
            return _error(401, "a valid scrape token is required")
        return flask.Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return metrics


def readyz_view(run_checks: Callable[[], dict[str, Any]],
                optional: frozenset[str] = frozenset()) -> Callable[[], Any]:
    """``GET /readyz``: every check's result; 200 ``ready`` when all pass, 200 ``degraded``
    when only ``optional`` ones fail, else 503 ``unavailable``; ``reason`` names the
    failed checks."""

    def readyz() -> tuple[dict[str, Any], int]:
        results = run_checks()
        failed = [name for name, r in results.items() if not r.ok]
        required = [name for name in failed if name not in optional]
        status = "unavailable" if required else "degraded" if failed else "ready"
        body: dict[str, Any] = {"status": status,
                                "checks": {name: r.to_json() for name, r in results.items()}}
        if failed:
            body["reason"] = ", ".join(failed)
            log.warning("readiness %s: %s failed", status, body["reason"])
        return body, 503 if required else 200

    return readyz


def _error(status: int, msg: str) -> flask.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="spe-metrics"'} if status == 401 else {}
    return flask.Response(flask.json.dumps({"msg": msg, "status_code": status}),
                          status=status, content_type="application/json", headers=headers)
