"""ASGI middlewares that refuse request bodies over a size limit with 413 and a GA4GH
``ErrorResponse``, whether the client sends a Content-Length or streams chunks, and JSON
bodies nested too deep with 400."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spe.domain.json_limits import MAX_JSON_DEPTH, depth_error, too_deep


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; inner handlers answer it as a 413 ErrorResponse."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"msg": f"request body larger than {self.max_bytes} bytes",
                           "status_code": 413}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)


def _is_json(scope: Scope) -> bool:
    content_type: bytes = dict(scope.get("headers") or []).get(b"content-type", b"")
    media = content_type.lower().split(b";")[0].strip()
    return media == b"application/json" or media.endswith(b"+json")


class JsonDepthLimit:
    """Refuses a JSON request body nested deeper than ``max_depth`` levels with 400 and an
    ``ErrorResponse`` before any parser sees it (a deep body would make connexion's and
    Flask's ``json.loads`` raise ``RecursionError``, a 500). Other bodies pass untouched;
    a JSON body is read whole, within the body-size limit outside this middleware."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if too_deep(body.decode("utf-8", errors="replace"), self.max_depth):
            error = depth_error("body", self.max_depth)
            reply = json.dumps({"msg": str(error), "status_code": 400}).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(reply)).encode())]})
            await send({"type": "http.response.body", "body": reply})
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
