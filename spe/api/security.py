"""Bearer tokens to a Principal. The token itself is never logged or stored."""

from __future__ import annotations

from typing import Any

from connexion.security import AbstractSecurityHandler
from starlette.concurrency import run_in_threadpool

from spe.domain.errors import Unauthenticated
from spe.domain.models import AuditEvent, Principal
from spe.domain.ports import AuditLog, TokenVerifier

MAX_TOKEN = 16384


class Authenticator:
    def __init__(self, verifier: TokenVerifier, audit: AuditLog) -> None:
        self._verifier = verifier
        self._audit = audit

    def __call__(self, authorization: str | None, client: str = "") -> Principal:
        try:
            return self._verifier.verify(_bearer(authorization))
        except Unauthenticated as exc:
            self._audit.append(AuditEvent(action="auth.failure", actor="anonymous",
                                          outcome="denied", target=client[:255],
                                          details={"reason": str(exc)[:200]}))
            raise


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
