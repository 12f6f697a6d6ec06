"""The anonymous ``GET /ga4gh/wes/v1/service-info`` answered at the edge of the ASGI stack.

Without a token the document is the same for every caller (its state counts are all zero:
they are the caller's own), so the connexion stack (routing, security, the WSGI bridge,
Flask) adds nothing but time: about 0.5 ms of a 0.6 ms request. This middleware renders
the document through the same code and encoder as the operation, keeps it for ``ttl``
seconds per base URL (the ``auth_instructions_url`` it carries depends on the Host the
client used, as Flask computes it), and answers from that. A request with an
``Authorization`` header, a query string or another method falls through to the
operation, which answers as before. Placed inside the request observer and the security
headers, so the answer is counted and carries the same headers."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send
from werkzeug.sansio.utils import get_host

PATH = "/ga4gh/wes/v1/service-info"
CACHED_HOSTS = 16  # distinct base URLs kept; any further one is rendered per request


class PublicServiceInfo:
    def __init__(self, app: ASGIApp, render: Callable[[str], bytes], ttl: float = 1.0) -> None:
        self.app = app
        self._render = render
        self._ttl = ttl
        self._cache: dict[str, tuple[float, bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _anonymous_get(scope):
            await self.app(scope, receive, send)
            return
        body = self._body(_base_url(scope))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _body(self, base_url: str) -> bytes:
        now = time.monotonic()
        cached = self._cache.get(base_url)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        body = self._render(base_url)
        if base_url in self._cache or len(self._cache) < CACHED_HOSTS:
            self._cache[base_url] = (now, body)
        return body


def _anonymous_get(scope: Scope) -> bool:
    return (scope["type"] == "http" and scope.get("path") == PATH
            and scope.get("method") == "GET" and not scope.get("query_string")
            and not any(name == b"authorization" for name, _ in scope.get("headers", ())))


def _base_url(scope: Scope) -> str:
    """``flask.request.host_url`` without the trailing slash, from the ASGI scope."""
    scheme = str(scope.get("scheme", "http"))
    host_header = next((value.decode("latin-1") for name, value in scope.get("headers", ())
                        if name == b"host"), None)
    server = scope.get("server")
    return f"{scheme}://{get_host(scheme, host_header, tuple(server) if server else None)}"
