"""The one table from domain errors to HTTP, and handlers that answer every error with a
GA4GH ``ErrorResponse`` body: ``{"msg": ..., "status_code": ...}``."""

from __future__ import annotations

import json
import logging

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from spe.domain import errors as e

log = logging.getLogger(__name__)

STATUS: dict[type[e.DomainError], int] = {
    e.InvalidRequest: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.PayloadTooLarge: 413,
    e.TooManyRequests: 429,
    e.IdentityProviderUnavailable: 503,
    e.ServiceUnavailable: 503,
}


def status_of(exc: e.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(status: int, msg: str, headers: dict[str, str] | None = None
                   ) -> ConnexionResponse:
    body = json.dumps({"msg": msg, "status_code": status})
    return ConnexionResponse(status_code=status, body=body, mimetype="application/json",
                             content_type="application/json", headers=headers or {})


def bearer_challenge(authorization: str | None) -> str:
    """RFC 6750 section 3: no credentials, no error code; a token that was refused,
    ``invalid_token``; an Authorization header that is not a bearer token,
    ``invalid_request``."""
    if not authorization or not authorization.strip():
        return 'Bearer realm="spe"'
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return 'Bearer realm="spe", error="invalid_token"'
    return 'Bearer realm="spe", error="invalid_request"'


def on_domain_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, e.DomainError)  # noqa: S101 - registered for DomainError only
    status = status_of(exc)
    log.log(logging.INFO if status < 500 else logging.WARNING, "answered %s: %s",
            status, type(exc).__name__, extra={"status": status, "error": type(exc).__name__})
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = bearer_challenge(_request.headers.get("Authorization"))
    if status == 503:
        headers["Retry-After"] = "30"
    if isinstance(exc, e.TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(status, str(exc), headers)


def on_problem(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, ProblemException)  # noqa: S101 - registered for it only
    detail = exc.detail or exc.title or "request rejected"
    return error_response(exc.status, str(detail), dict(exc.headers or {}))


def on_http_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for it only
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


def on_multipart_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Starlette's form parser refuses a part over its size limit, or a malformed body."""
    message = str(exc)
    if "exceeded maximum size" in message:
        return error_response(413, f"a form field is too large: {message}")
    return error_response(400, f"malformed multipart body: {message}")


def on_bad_encoding(_request: ConnexionRequest, _exc: Exception) -> ConnexionResponse:
    """Connexion decodes JSON bodies as UTF-8 before validating them."""
    return error_response(400, "the request body is not valid UTF-8")


def on_unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal error; the incident was logged")
