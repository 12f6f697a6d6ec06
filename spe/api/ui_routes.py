"""The reviewer page (``/spe/ui/``): three static files and its sign-in configuration.

The page is plain HTML, JavaScript and an SVG icon with no build step and nothing from elsewhere; it
signs in with the authorization code flow with PKCE at the configured issuer and then
calls ``/spe/v1`` with the bearer token. Only a fixed list of files is served.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import flask
from connexion import FlaskApp

UI_DIR = Path(__file__).resolve().parent / "ui"
PAGE_PATH = "/spe/ui/"
# name -> content type: the only files served
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(issuer: str) -> str:
    """Same-origin everything; the page may also call the issuer (discovery, token)."""
    connect = " ".join(["'self'", *([o] if (o := _origin(issuer)) else [])])
    return ("default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
            f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'")


def add_ui_routes(app: FlaskApp, *, issuer: str, client_id: str, scope: str) -> None:
    """Registers ``/spe/ui``, ``/spe/ui/``, ``/spe/ui/app.js``, ``/spe/ui/style.css`` and
    ``/spe/ui/config.json``; their endpoint names start with ``ui_`` (see the guard in
    ``spe.app.add_plain_routes``)."""
    headers = {
        "Content-Security-Policy": content_security_policy(issuer),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }
    config = json.dumps({"issuer": issuer, "client_id": client_id, "scope": scope})

    def respond(body: bytes | str, content_type: str, status: int = 200) -> flask.Response:
        resp = flask.Response(body, status=status, content_type=content_type)
        resp.headers.update(headers)
        return resp

    def ui_root() -> flask.Response:
        resp = respond(b"", "text/plain; charset=utf-8", 308)
        resp.headers["Location"] = PAGE_PATH
        return resp

    def ui_index() -> flask.Response:
        return ui_asset("index.html")

    def ui_asset(name: str) -> flask.Response:
        content_type = ASSETS.get(name)
        if content_type is None:
            return respond(json.dumps({"msg": "no such resource", "status_code": 404}),
                           "application/json", 404)
        return respond((UI_DIR / name).read_bytes(), content_type)

    def ui_config() -> flask.Response:
        return respond(config, "application/json")

    app.add_url_rule("/spe/ui", "ui_root", ui_root)
    app.add_url_rule(PAGE_PATH, "ui_index", ui_index)
    app.add_url_rule(PAGE_PATH + "config.json", "ui_config", ui_config)
    app.add_url_rule(PAGE_PATH + "<name>", "ui_asset", ui_asset)
    # browsers ask for /favicon.ico whatever the page links: the same icon
    app.add_url_rule("/favicon.ico", "ui_favicon", lambda: ui_asset("favicon.svg"))
