"""Issue 11, finding 11: hostile input gets a 400, never a 500. Deeply nested JSON in
`workflow_params`, `workflow_engine_parameters`, `tags` and JSON request bodies is refused
before any parser recurses into it; a date-time that cannot be expressed in UTC is 400; and
the audit log authorises its caller before it parses the query."""

from __future__ import annotations

import sqlite3

import pytest

from tests.helpers import Api, Server

DEEP = "[" * 2000 + "]" * 2000  # json.loads recurses once per level; fits in 4096 chars
DEEP_OBJECT = '{"a": ' * 5000 + "1" + "}" * 5000
HOSTILE_UNTIL = "0001-01-01T00:00:00+01:00"  # a valid date-time one hour before year 1 UTC


def assert_depth_refused(resp_status: int, body: dict[str, object]) -> None:
    assert resp_status == 400, body
    assert body["status_code"] == 400
    assert "nested deeper than 32 levels" in str(body["msg"]), body


@pytest.mark.parametrize("field", ["workflow_params", "workflow_engine_parameters", "tags"])
def test_deeply_nested_json_is_400_not_500(api: Api, field: str) -> None:
    form = {field: '{"x": ' + DEEP + "}"}
    resp = api.submit("sleepy", None, **form)
    assert_depth_refused(resp.status_code, resp.json())
    keyed = api.submit("sleepy", None, headers={"Idempotency-Key": "deep-1"}, **form)
    assert_depth_refused(keyed.status_code, keyed.json())


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, '{"run_id": "x", "files": ' + DEEP + "}"])
def test_deeply_nested_json_body_of_an_airlock_endpoint_is_400(api: Api, body: str) -> None:
    for path in ("/spe/v1/release-requests", "/spe/v1/release-requests/nope/votes"):
        resp = api.post(path, data=body, headers={"Content-Type": "application/json"})
        assert_depth_refused(resp.status_code, resp.json())


def test_json_nested_to_the_limit_is_still_parsed(api: Api) -> None:
    nested: object = 1
    for _ in range(30):  # 31 levels with the outer object
        nested = {"a": nested}
    resp = api.submit("sleepy", {"seconds": 0, "deep": nested})
    assert resp.status_code == 400, resp.text
    assert "nested deeper" not in resp.json()["msg"]  # the schema refuses "deep", not depth


def test_audit_until_far_past_is_400(server: Server) -> None:
    operator = Api(server.url, server.token("olga-hostile", groups=("spe:operators",)))
    for name in ("until", "since"):
        resp = operator.get("/spe/v1/audit", params={name: HOSTILE_UNTIL})
        assert resp.status_code == 400, resp.text
        assert name in resp.json()["msg"]


def test_audit_query_authorises_before_parsing(server: Server, user: str) -> None:
    researcher = server.api(user)
    resp = researcher.get("/spe/v1/audit", params={"until": HOSTILE_UNTIL})
    assert resp.status_code == 403, resp.text
    with sqlite3.connect(server.home / "spe.db") as db:
        denied = db.execute("SELECT outcome FROM audit_events WHERE action = 'audit.read' "
                            "AND actor = ?", (f"dev|{user}",)).fetchall()
    assert denied == [("denied",)]
