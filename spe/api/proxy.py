"""Forwarded headers believed only from the reverse proxies the operator named
(``trusted_proxies``).

A request that arrives from a trusted proxy has its client address and scheme taken from
``X-Forwarded-For`` and ``X-Forwarded-Proto`` (uvicorn's ``ProxyHeadersMiddleware``: the
client is the right-most address in the chain that is not itself a trusted proxy). From
any other peer those headers change nothing. In both cases every forwarding header
(``X-Forwarded-*``, ``Forwarded``) is removed before the application sees the request,
so no code further in can read a value a client made up. The host name in links comes
from ``public_url`` (or the ``Host`` header the proxy sets), never from
``X-Forwarded-Host``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

_FORWARDING = b"x-forwarded-"


def _is_forwarding(name: bytes) -> bool:
    return name.startswith(_FORWARDING) or name == b"forwarded"


class TrustedProxies:
    """ASGI middleware; ``trusted`` holds addresses or CIDR networks (checked by
    ``spe.config_tls.proxy_networks`` at start-up). Empty: no peer is trusted."""

    def __init__(self, app: ASGIApp, trusted: Sequence[str] = ()) -> None:
        self.app = app
        self._networks = [ipaddress.ip_network(t, strict=False) for t in trusted]
        self._forwarded = ProxyHeadersMiddleware(self._stripped,  # type: ignore[arg-type]
                                                 trusted_hosts=[str(n) for n in
                                                                self._networks])

    def trusts(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    async def _stripped(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = [(k, v) for k, v in scope["headers"] if not _is_forwarding(k)]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self.trusts(client[0]):
            await self._forwarded(scope, receive, send)  # type: ignore[arg-type]
            return
        await self._stripped(scope, receive, send)
