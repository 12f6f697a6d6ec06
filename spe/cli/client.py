"""The HTTP client of the user-side commands (``spe run``, ``spe release``, ``spe data``,
``spe task``): bearer token, timeouts, retries, and errors as ``ApiError``.

Retries (urllib3's ``Retry`` under ``requests``):

- a connection that could not be made is retried for every request (nothing was sent);
- a request that is safe to repeat (GET, HEAD, OPTIONS, PUT, DELETE, or a POST carrying an
  ``Idempotency-Key``: ``ApiClient.call(..., idempotency_key=KEY)``) is also retried when
  the answer was lost (connection cut, read timeout) or was 429/502/503/504;
- waits grow 0.5 s, 1 s, 2 s ... up to 8 s, or what ``Retry-After`` asks (at most 60 s);
- after the last try the server's answer is returned as ``ApiError`` (exit 1) or the
  connection error is raised (exit 3, see ``spe.cli.errors``).

A command group gets a client with ``service_options`` on the group (``--url``,
``--token``) and ``client_for(ctx)`` in its commands.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import click
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from spe.cli.errors import ApiError, BadInput, one_line

__all__ = ["ApiClient", "ApiError", "WesClient", "client_for", "service_options"]

TIMEOUT = 30.0
RETRIES = 4
RETRIES_ENV = "SPE_CLI_RETRIES"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_FIRST, BACKOFF_MAX, RETRY_AFTER_MAX = 0.5, 8.0, 60.0
DEFAULT_URL = "http://127.0.0.1:8080"
_HINTS = {401: "the token was refused: `spe login` again, or set a fresh SPE_TOKEN"}
F = TypeVar("F", bound=Callable[..., Any])


class _Retry(Retry):
    """urllib3's Retry with ``Retry-After`` capped, so a server cannot park the CLI."""

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, RETRY_AFTER_MAX)


def _session(retries: int, methods: frozenset[str] | None) -> requests.Session:
    policy = _Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                    allowed_methods=methods, status_forcelist=RETRY_STATUSES,
                    backoff_factor=BACKOFF_FIRST, backoff_max=BACKOFF_MAX,
                    respect_retry_after_header=True, raise_on_status=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class ApiClient:
    """Requests to the service at ``base_url`` with ``token``."""

    def __init__(self, base_url: str, token: str, retries: int = RETRIES) -> None:
        self.base = base_url.rstrip("/")
        self.retries = retries
        self.session = _session(retries, Retry.DEFAULT_ALLOWED_METHODS)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._keyed: requests.Session | None = None

    def _keyed_session(self) -> requests.Session:
        """For POSTs with an Idempotency-Key: every method may be retried."""
        if self._keyed is None:
            self._keyed = _session(self.retries, None)
            self._keyed.headers = self.session.headers
        return self._keyed

    def call(self, method: str, path: str, *, idempotency_key: str = "",
             **kwargs: Any) -> requests.Response:
        """One request (retried as the module says); ``ApiError`` with the server's
        ErrorResponse message on 4xx/5xx."""
        session = self.session
        if idempotency_key:
            session = self._keyed_session()
            kwargs["headers"] = {**kwargs.get("headers", {}),
                                 "Idempotency-Key": idempotency_key}
        kwargs.setdefault("timeout", TIMEOUT)
        resp = session.request(method, self.base + path, **kwargs)
        if resp.status_code >= 400:
            raise _error(resp)
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object the request answers."""
        try:
            body = self.call(method, path, **kwargs).json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(502, f"{path}: the answer is not a JSON object")
        return body

    def pages(self, path: str, key: str, params: dict[str, Any] | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
        """Every item of a paged listing (``next_page_token``), at most ``limit``."""
        query = dict(params or {})
        items: list[dict[str, Any]] = []
        while limit is None or len(items) < limit:
            page = self.json("GET", path, params=query)
            items += list(page.get(key) or [])
            token = page.get("next_page_token")
            if not token:
                break
            query["page_token"] = token
        return items if limit is None else items[:limit]


def _error(resp: requests.Response) -> ApiError:
    try:
        body = resp.json()
        msg = body.get("msg", resp.text) if isinstance(body, dict) else resp.text
    except ValueError:
        msg = resp.text or resp.reason
    return ApiError(resp.status_code, one_line(str(msg)), _HINTS.get(resp.status_code, ""))


def seg(value: str) -> str:
    """``value`` as one path segment (ids come from the command line)."""
    return quote(value, safe="@")


class WesClient(ApiClient):
    """The WES and ``/spe/v1`` calls of ``spe run``."""

    def service_info(self) -> dict[str, Any]:
        return self.json("GET", "/ga4gh/wes/v1/service-info")

    def workflows(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/spe/v1/workflows")["workflows"])

    def workflow(self, ref: str) -> dict[str, Any]:
        return self.json("GET", f"/spe/v1/workflows/{seg(ref)}")

    def submit(self, fields: dict[str, Any], idempotency_key: str) -> str:
        """POST /runs. With a key, the submission is safe to repeat, so a lost answer is
        retried; the server answers a repeat with the run the key already made."""
        form = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}
        files = [(k, (None, v)) for k, v in form.items()]
        body = self.json("POST", "/ga4gh/wes/v1/runs", files=files,
                         idempotency_key=idempotency_key)
        return str(body["run_id"])

    def runs(self, page_size: int = 50, page_token: str = "",
             filters: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"page_size": page_size, **(filters or {})}
        if page_token:
            params["page_token"] = page_token
        return self.json("GET", "/ga4gh/wes/v1/runs", params=params)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.json("GET", f"/ga4gh/wes/v1/runs/{seg(run_id)}")

    def status(self, run_id: str) -> dict[str, Any]:
        return self.json("GET", f"/ga4gh/wes/v1/runs/{seg(run_id)}/status")

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        return self.pages(f"/ga4gh/wes/v1/runs/{seg(run_id)}/tasks", "task_logs",
                          {"page_size": 200})

    def progress(self, run_id: str) -> dict[str, Any]:
        """Our extension: the job counts the engine reported (``planned_jobs``...)."""
        return self.json("GET", f"/spe/v1/runs/{seg(run_id)}/progress")

    def cancel(self, run_id: str) -> str:
        return str(self.json("POST", f"/ga4gh/wes/v1/runs/{seg(run_id)}/cancel")["run_id"])

    def log(self, run_id: str, stream: str) -> str:
        return self.call("GET", f"/spe/v1/runs/{seg(run_id)}/logs/{stream}").text


def _remember(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.ensure_object(dict)[str(param.name)] = value
    return value


def service_options(group: F) -> F:
    """``--url`` and ``--token`` on a command group; ``client_for`` reads them."""
    group = click.option("--token", envvar="SPE_TOKEN", default="", expose_value=False,
                         callback=_remember, help="Bearer token (SPE_TOKEN; default: the "
                         "one `spe login` stored for --url).")(group)
    return click.option("--url", envvar="SPE_URL", default=DEFAULT_URL, show_default=True,
                        expose_value=False, callback=_remember,
                        help="Base URL of the service (SPE_URL).")(group)


def _retries() -> int:
    """``SPE_CLI_RETRIES`` (default 4): how often a request is tried again."""
    raw = os.environ.get(RETRIES_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) <= 20 else RETRIES


def client_for(ctx: click.Context, retries: int | None = None) -> WesClient:
    """A client for the service named by the group's ``--url``/``--token`` (or the token
    ``spe login`` stored for that URL)."""
    obj = ctx.find_object(dict) or {}
    url, token = str(obj.get("url", DEFAULT_URL)), str(obj.get("token", ""))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"bad service URL {url[:200]!r}: give http(s)://HOST[:PORT] as "
                       "SPE_URL or --url")
    if not token:
        from spe.cli.tokens import current_token

        token = current_token(url) or ""
    if not token:
        raise click.ClickException("no token: run `spe login`, set SPE_TOKEN or pass --token "
                                   "(embedded default: export SPE_TOKEN=$(spe dev token "
                                   "--user NAME))")
    return WesClient(url, token, _retries() if retries is None else retries)
