"""Bearer tokens to a Principal. The token itself is never logged or stored.

Failed authentications are audited in aggregate and rate-limited per client address: the
first failure of a (client, reason) pair in a minute is written at once, the repeats of
that minute become one more ``auth.failure`` event with their ``count`` (written at the
next authentication after the minute, or at shutdown). A client with
``failures_per_minute`` failures in its current minute gets 429 with ``Retry-After``
until the minute ends, without its token being verified. The counters live in this
process: with several API processes each keeps its own."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connexion.security import AbstractSecurityHandler
from starlette.concurrency import run_in_threadpool

from spe.domain.errors import TooManyRequests, Unauthenticated
from spe.domain.models import AuditEvent, Principal
from spe.domain.ports import AuditLog, TokenVerifier

MAX_TOKEN = 16384
WINDOW_SECONDS = 60.0
RATE_LIMITED = "too many unauthenticated requests from this address"


@dataclass
class _Window:
    start: float
    count: int = 0  # failures since start (the rate limit)
    unreported: int = 0  # of them, not yet in the audit (the aggregate)


class Authenticator:
    def __init__(self, verifier: TokenVerifier, audit: AuditLog,
                 failures_per_minute: int = 300,
                 clock: Callable[[], float] = time.monotonic,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self._verifier = verifier
        self.on_failure = on_failure  # told each failure's reason (the metrics count them)
        self._audit = audit
        self._limit = failures_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, _Window] = {}
        self._reasons: dict[tuple[str, str], _Window] = {}
        self._due = math.inf  # when the oldest open window ends

    def __call__(self, authorization: str | None, client: str = "") -> Principal:
        now = self._clock()
        self.flush(now)
        wait = self._wait(client, now)
        if wait:
            self._failed(client, RATE_LIMITED, now)
            raise TooManyRequests(f"{RATE_LIMITED}; retry after {wait} s", wait)
        try:
            return self._verifier.verify(_bearer(authorization))
        except Unauthenticated as exc:
            self._failed(client, str(exc)[:200], now)
            raise

    def _wait(self, client: str, now: float) -> int:
        """Seconds until ``client`` may try again, 0 if it may now."""
        with self._lock:
            window = self._clients.get(client)
            if window is None or window.count < self._limit:
                return 0
            return max(1, math.ceil(window.start + WINDOW_SECONDS - now))

    def _failed(self, client: str, reason: str, now: float) -> None:
        if self.on_failure is not None:
            self.on_failure(reason)
        with self._lock:
            self._clients.setdefault(client, _Window(now)).count += 1
            self._due = min(self._due, now + WINDOW_SECONDS)
            window = self._reasons.get((client, reason))
            if window is not None:
                window.unreported += 1
                return
            self._reasons[(client, reason)] = _Window(now, count=1)
        self._append(client, reason, 1)

    def flush(self, now: float | None = None) -> None:
        """Close the windows that ended by ``now`` (all of them if None): each one's
        unreported repeats become one audit event with their count."""
        due: list[tuple[str, str, int]] = []
        with self._lock:
            if now is not None and now < self._due:
                return
            for client, window in list(self._clients.items()):
                if now is None or window.start + WINDOW_SECONDS <= now:
                    del self._clients[client]
            for (client, reason), window in list(self._reasons.items()):
                if now is None or window.start + WINDOW_SECONDS <= now:
                    del self._reasons[(client, reason)]
                    if window.unreported:
                        due.append((client, reason, window.unreported))
            starts = [w.start for w in (*self._clients.values(), *self._reasons.values())]
            self._due = min(starts, default=math.inf) + WINDOW_SECONDS
        for client, reason, count in due:
            self._append(client, reason, count)

    def _append(self, client: str, reason: str, count: int) -> None:
        details: dict[str, Any] = {"reason": reason, "count": count,
                                   "window_seconds": int(WINDOW_SECONDS)}
        self._audit.append(AuditEvent(action="auth.failure", actor="anonymous",
                                      outcome="denied", target=client[:255],
                                      details=details))


def security_map(authenticate: Authenticator) -> dict[str, type[AbstractSecurityHandler]]:
    """Connexion's handler for the ``bearerAuth`` scheme of our documents: every operation
    that declares it is authenticated before validation or routing to a controller, and
    the Principal is put in the request context as ``token_info["principal"]``."""

    class BearerHandler(AbstractSecurityHandler):  # type: ignore[misc]  # untyped base
        security_definition_key = "x-bearerInfoFunc"
        environ_key = "BEARERINFO_FUNC"

        def get_fn(self, security_scheme: Any, required_scopes: Any) -> Any:
            async def verify(request: Any) -> dict[str, Principal]:
                header = request.headers.get("Authorization")
                client = request.client.host if request.client else ""
                principal = await run_in_threadpool(authenticate, header, client)
                return {"principal": principal}

            return verify

    return {"bearer": BearerHandler}


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN:
        raise Unauthenticated("token too long")
    return token
