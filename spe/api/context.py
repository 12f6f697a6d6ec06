"""What a controller needs from the current HTTP request, in one place."""

from __future__ import annotations

import flask
from connexion import context

from spe.domain.errors import Unauthenticated
from spe.domain.models import Principal


def authorization_header() -> str | None:
    return flask.request.headers.get("Authorization")


def client_address() -> str:
    return flask.request.remote_addr or ""


def principal() -> Principal:
    """The caller authenticated by ``security.security_map`` for this request."""
    info = context.context.get("token_info") or {}
    who = info.get("principal") if isinstance(info, dict) else None
    if not isinstance(who, Principal):
        raise Unauthenticated("authentication required")
    return who


def base_url(public_url: str) -> str:
    return (public_url or flask.request.host_url).rstrip("/")


def routed_by_connexion() -> bool:
    """False when Flask matched a path that connexion's router did not (e.g. control
    characters in a path parameter): then no operation ran its security and validation."""
    try:
        context.operation._get_current_object()  # raises when no operation is bound
    except RuntimeError:
        return False
    return True
