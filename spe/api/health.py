"""``GET /healthz`` answered at the edge of the ASGI stack: liveness needs no routing,
security, validation or WSGI bridge, so a probe costs next to nothing. Placed inside the
security-headers middleware, so the answer carries the same headers as before. Other
methods fall through to the app, which answers as it did before."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

PATH = "/healthz"
BODY = b'{"status":"ok"}\n'
_HEADERS = [(b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode())]


class Liveness:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != PATH \
                or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else BODY})
