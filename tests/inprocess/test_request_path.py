"""The fast request path: liveness answered before the routing stack, compact JSON
bodies, and nothing lost on the way (headers, 405s, big integers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from connexion.jsonifier import JSONEncoder

from spe.api.jsonify import FastJsonifier
from tests.helpers import WES
from tests.inprocess.harness import InProcess


def test_healthz_answers_with_the_security_headers(spe: InProcess) -> None:
    resp = spe.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in resp.headers["content-security-policy"]


def test_other_methods_on_healthz_fall_through_to_the_app_as_before(spe: InProcess) -> None:
    resp = spe.client.post("/healthz")
    assert resp.status_code == 404
    assert resp.json()["msg"] == "no such resource"


def test_api_bodies_are_compact_json(spe: InProcess) -> None:
    resp = spe.client.get(f"{WES}/service-info")
    assert resp.status_code == 200
    text = resp.text
    assert "\n " not in text and '": ' not in text  # no indentation, no spaces
    assert json.loads(text)["type"]["artifact"] == "wes"


def test_values_orjson_refuses_are_encoded_as_the_standard_library_does() -> None:
    jsonifier = FastJsonifier()
    for value in ({"n": 2**80}, {1: "int key"}, {"at": datetime(2026, 1, 2, tzinfo=UTC)}):
        assert json.loads(jsonifier.dumps(value)) == json.loads(
            json.dumps(value, cls=JSONEncoder))
    assert jsonifier.dumps({"a": [1, "b"]}) == '{"a":[1,"b"]}\n'
