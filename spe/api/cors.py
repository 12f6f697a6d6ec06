"""Opt-in CORS for browser dashboards on other origins (``SPE_CORS_ALLOWED_ORIGINS``, off
by default): starlette's middleware, outside connexion's security, so a preflight needs
no token and error answers carry the headers too. Only the listed origins get
``Access-Control-Allow-Origin``; credentials (cookies) are never allowed: the API takes
bearer tokens only."""

from __future__ import annotations

from connexion import FlaskApp
from connexion.middleware import MiddlewarePosition
from starlette.middleware.cors import CORSMiddleware

METHODS = ["GET", "POST", "DELETE"]
REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
EXPOSED_HEADERS = ["Retry-After", "WWW-Authenticate", "Content-Disposition"]
MAX_AGE_SECONDS = 600


def add_cors(app: FlaskApp, origins: tuple[str, ...]) -> None:
    """CORS for exactly ``origins``; nothing at all when there are none."""
    if not origins:
        return
    app.add_middleware(CORSMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       allow_origins=list(origins), allow_methods=METHODS,
                       allow_headers=REQUEST_HEADERS, expose_headers=EXPOSED_HEADERS,
                       allow_credentials=False, max_age=MAX_AGE_SECONDS)
