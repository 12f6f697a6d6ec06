"""The fast request path: liveness answered before the routing stack, compact JSON
bodies, and nothing lost on the way (headers, 405s, big integers)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from connexion.jsonifier import JSONEncoder
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from spe.api.jsonify import FastJsonifier
from spe.api.public_info import CACHED_HOSTS, PATH, PublicServiceInfo
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


def test_anonymous_service_info_from_the_edge_is_the_operations_document(
        spe: InProcess) -> None:
    edge = spe.client.get(f"{WES}/service-info", headers={"Host": "wes.example.org"})
    # a bad token and a query string both go through the operation, which counts nothing
    for through in (spe.client.get(f"{WES}/service-info", headers={
                        "Host": "wes.example.org", "Authorization": "Bearer not-a-token"}),
                    spe.client.get(f"{WES}/service-info?x=1",
                                   headers={"Host": "wes.example.org"})):
        assert through.status_code == edge.status_code == 200
        assert through.content == edge.content
        for header in ("content-type", "x-frame-options", "content-security-policy",
                       "cache-control"):
            assert edge.headers.get(header) == through.headers.get(header)
    stack = spe.service.app.middleware.middlewares  # the edge is in the app's stack
    assert any(getattr(layer, "func", None) is PublicServiceInfo for layer in stack)
    document = edge.json()
    assert document["auth_instructions_url"] == \
        "http://wes.example.org/spe/v1/auth-instructions"
    assert set(document["system_state_counts"].values()) == {0}


def test_the_edge_renders_again_after_its_ttl_and_bounds_its_cache() -> None:
    rendered: list[str] = []

    def render(base: str) -> bytes:
        rendered.append(base)
        return b"{}"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("an anonymous GET must not reach the app")

    edge = PublicServiceInfo(app, render, ttl=0.2)
    client = TestClient(edge)
    for _ in range(3):
        assert client.get(PATH, headers={"Host": "a.example"}).content == b"{}"
    assert rendered == ["http://a.example"]
    time.sleep(0.25)
    client.get(PATH, headers={"Host": "a.example"})
    assert rendered == ["http://a.example"] * 2
    for n in range(CACHED_HOSTS + 3):  # a client choosing Host headers cannot grow it
        client.get(PATH, headers={"Host": f"h{n}.example"})
    assert len(edge._cache) == CACHED_HOSTS
