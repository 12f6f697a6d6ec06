"""Validates real responses of our server against the official GA4GH WES 1.1 document."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/ga4gh"


def _official() -> OpenAPI:
    """The official document, unchanged but for its server entry: its templated
    ``https://{defaultHost}/{basePath}/{apiVersion}`` cannot match a slash in basePath."""
    path = REFERENCE / "wes-1.1.0.openapi.yaml"
    spec = json.loads(json.dumps(yaml.safe_load(path.read_text())))  # status keys as str
    spec["servers"] = [{"url": "https://www.example.com/ga4gh/wes/v1"}]
    return OpenAPI.from_dict(spec, base_uri=path.as_uri())


OFFICIAL_WES = _official()


def assert_valid_wes(resp: requests.Response) -> None:
    """Raise if ``resp`` (and its request) do not match the official document.

    The request URL is moved onto the document's default server; the path is unchanged."""
    request = resp.request.copy()
    parts = urlsplit(str(request.url))
    request.url = f"https://www.example.com{parts.path}" + (f"?{parts.query}" if parts.query
                                                            else "")
    OFFICIAL_WES.validate_response(RequestsOpenAPIRequest(request),
                                   RequestsOpenAPIResponse(resp))
