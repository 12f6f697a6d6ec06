"""Security headers on every response: an ASGI middleware outside connexion's routing, so
the JSON API, the health endpoints, the OpenAPI documents, Swagger UI and the error
answers all carry them. A response that sets its own (the reviewer page, whose policy names
the issuer) keeps its own. A request that came over HTTPS (to `spe serve --tls-cert`, or
through a trusted proxy that says so: ``spe.api.proxy``) gets HSTS as well."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Nothing may be loaded, framed or submitted: the API answers JSON, never a page.
API_POLICY = ("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
              "form-action 'none'")
# connexion's Swagger UI page has an inline script and style; everything else is its own.
SWAGGER_UI_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                     "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                     "form-action 'none'")
SWAGGER_UI_PATHS = ("/ga4gh/wes/v1/ui", "/spe/v1/ui")
HSTS = b"max-age=63072000"  # two years; subdomains are the site's own decision


def security_headers(path: str, scheme: str = "http") -> dict[bytes, bytes]:
    policy = SWAGGER_UI_POLICY if path.startswith(SWAGGER_UI_PATHS) else API_POLICY
    headers = {b"content-security-policy": policy.encode(),
               b"x-frame-options": b"DENY",
               b"x-content-type-options": b"nosniff",
               b"referrer-policy": b"no-referrer"}
    if scheme == "https":
        headers[b"strict-transport-security"] = HSTS
    return headers


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = security_headers(str(scope.get("path", "")), str(scope.get("scheme", "")))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in wanted.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
