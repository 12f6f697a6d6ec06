"""Validates real responses of our server against the official GA4GH WES 1.1 and TES 1.1
documents.

The document is found through ``tests/ga4gh_specs.py`` (``SPE_GA4GH_SPECS``). Without it,
``assert_valid_wes`` only notes the response it could not validate: the test's other
assertions still run, and a test that passes them is then reported as skipped with that
reason (``pytest_runtest_call`` in ``tests/conftest.py``), not as passed."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from tests.ga4gh_specs import TES_DOCUMENT, WES_DOCUMENT, find, missing_reason

# responses the running test could not validate (no official document); see the module doc
UNVALIDATED: list[str] = []


@functools.cache
def _official(path: Path, base: str) -> OpenAPI:
    """The official document, unchanged but for its server entry: its templated
    ``https://{defaultHost}/{basePath}/{apiVersion}`` cannot match a slash in basePath."""
    spec = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))  # keys as str
    spec["servers"] = [{"url": f"https://www.example.com{base}"}]
    return OpenAPI.from_dict(spec, base_uri=path.as_uri())


def assert_valid_wes(resp: requests.Response) -> None:
    """Raise if ``resp`` (and its request) do not match the official WES document.

    The request URL is moved onto the document's default server; the path is unchanged."""
    _assert_valid(resp, WES_DOCUMENT, "/ga4gh/wes/v1")


def assert_valid_tes(resp: requests.Response) -> None:
    """``assert_valid_wes`` for the official TES document.

    A known mismatch of the document itself: the MINIMAL view is ``{id, state}`` by the
    spec's own text, while its ``tesTask`` schema requires ``executors``. A MINIMAL task is
    checked to hold exactly those two keys instead."""
    query = parse_qs(urlsplit(str(resp.request.url)).query)
    if resp.request.method == "GET" and resp.status_code == 200 and \
            query.get("view", ["MINIMAL"])[0] == "MINIMAL" and "/tasks" in str(resp.url):
        body = resp.json()
        for task in body.get("tasks", [body]):
            assert set(task) == {"id", "state"}, task
        return
    _assert_valid(resp, TES_DOCUMENT, "/ga4gh/tes/v1")


def _assert_valid(resp: requests.Response, name: str, base: str) -> None:
    request = resp.request.copy()
    parts = urlsplit(str(request.url))
    document = find(name)
    if document is None:
        if os.environ.get("SPE_REQUIRE_GA4GH_SPECS") == "1":
            pytest.fail("SPE_REQUIRE_GA4GH_SPECS=1 but " + missing_reason(name))
        UNVALIDATED.append(f"{request.method} {parts.path} -> {resp.status_code}")
        return
    request.url = f"https://www.example.com{parts.path}" + (f"?{parts.query}" if parts.query
                                                            else "")
    _official(document, base).validate_response(RequestsOpenAPIRequest(request),
                                          RequestsOpenAPIResponse(resp))


def unvalidated_reason() -> str | None:
    """The skip reason for the responses the running test could not validate (and forgets
    them), or None if it validated all it asked for."""
    if not UNVALIDATED:
        return None
    count, first = len(UNVALIDATED), UNVALIDATED[0]
    UNVALIDATED.clear()
    return (f"{missing_reason(WES_DOCUMENT)}; {count} response(s) not validated against it "
            f"(first: {first}); every other assertion of the test passed")
