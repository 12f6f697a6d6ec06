"""A small WES client used by the ``spe run`` commands (plain requests, bearer token)."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

TIMEOUT = 30.0
RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0


class ApiError(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(f"HTTP {status}: {msg}")
        self.status = status


class WesClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; ``ApiError`` carrying the server's ErrorResponse message on 4xx/5xx."""
        resp = self.session.request(method, self.base + path, timeout=TIMEOUT, **kwargs)
        if resp.status_code >= 400:
            try:
                msg = resp.json().get("msg", resp.text)
            except ValueError:
                msg = resp.text
            raise ApiError(resp.status_code, str(msg)[:2000])
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self.call(method, path, **kwargs).json()
        if not isinstance(body, dict):
            raise ApiError(502, "unexpected response body")
        return body

    def service_info(self) -> dict[str, Any]:
        return self._json("GET", "/ga4gh/wes/v1/service-info")

    def workflows(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/spe/v1/workflows")["workflows"])

    def submit(self, fields: dict[str, Any], idempotency_key: str = "",
               retries: int = 0) -> str:
        """POST /runs. With a key, the submission is safe to repeat, so a connection that
        failed (the server may or may not have made the run) or a 502/503/504 is retried
        up to ``retries`` times, with backoff; the server answers a repeat with the run
        the key already made."""
        form = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}
        files = [(k, (None, v)) for k, v in form.items()]
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        for attempt in range(retries + 1 if idempotency_key else 1):
            last = attempt == retries or not idempotency_key
            try:
                body = self._json("POST", "/ga4gh/wes/v1/runs", files=files, headers=headers)
                return str(body["run_id"])
            except requests.ConnectionError:
                if last:
                    raise
            except ApiError as exc:
                if last or exc.status not in RETRY_STATUSES:
                    raise
            time.sleep(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def runs(self, page_size: int = 50, page_token: str = "") -> dict[str, Any]:
        params: dict[str, Any] = {"page_size": page_size}
        if page_token:
            params["page_token"] = page_token
        return self._json("GET", "/ga4gh/wes/v1/runs", params=params)

    def run(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/ga4gh/wes/v1/runs/{run_id}")

    def status(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/ga4gh/wes/v1/runs/{run_id}/status")

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"page_size": 200, **({"page_token": token} if token else {})}
            page = self._json("GET", f"/ga4gh/wes/v1/runs/{run_id}/tasks", params=params)
            items += page.get("task_logs", [])
            token = page.get("next_page_token", "")
            if not token:
                return items

    def cancel(self, run_id: str) -> str:
        return str(self._json("POST", f"/ga4gh/wes/v1/runs/{run_id}/cancel")["run_id"])

    def log(self, run_id: str, stream: str) -> str:
        return self.call("GET", f"/spe/v1/runs/{run_id}/logs/{stream}").text
