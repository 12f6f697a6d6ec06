"""Submissions a client can safely retry: ``Idempotency-Key`` on ``POST /runs`` (header, or
the ``spe.idempotency_key`` tag), against a real server."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.helpers import WES, Api, Server

KEY_TAG = "spe.idempotency_key"


def _keyed(api: Api, key: str, seconds: int = 0, **fields: Any) -> requests.Response:
    return api.submit("sleepy", {"seconds": seconds}, **fields,
                      **({} if not key else {"headers": {"Idempotency-Key": key}}))


def _run_ids(api: Api) -> list[str]:
    return [r["run_id"] for r in api.get(f"{WES}/runs", params={"page_size": 100})
            .json()["runs"]]


def test_a_repeated_key_returns_the_same_run_and_makes_no_second(api: Api) -> None:
    key = uuid.uuid4().hex
    first = api.run_id(_keyed(api, key))
    again = api.run_id(_keyed(api, key))
    assert again == first
    assert _run_ids(api) == [first]


def test_the_key_is_kept_as_a_tag_of_its_run(api: Api) -> None:
    key = uuid.uuid4().hex
    run_id = api.run_id(_keyed(api, "", tags={KEY_TAG: key}))
    assert api.run_id(_keyed(api, key, tags={KEY_TAG: key})) == run_id  # header and tag agree
    assert api.get(f"{WES}/runs/{run_id}").json()["request"]["tags"][KEY_TAG] == key


def test_a_key_reused_for_another_request_is_409_naming_the_key(api: Api) -> None:
    key = uuid.uuid4().hex
    first = api.run_id(_keyed(api, key, seconds=0))
    resp = _keyed(api, key, seconds=1)
    assert resp.status_code == 409
    body = resp.json()
    assert body["status_code"] == 409 and key in body["msg"]
    assert _run_ids(api) == [first]


def test_each_caller_has_their_own_keys(server: Server, user: str) -> None:
    key = uuid.uuid4().hex
    one = server.api(user)
    other = server.api(user + "-other")
    assert one.run_id(_keyed(one, key)) != other.run_id(_keyed(other, key))


def test_bad_keys_are_400(api: Api) -> None:
    for key in ("x" * 256, "has space", "tab\tkey"):
        resp = _keyed(api, key)
        assert resp.status_code == 400, (key, resp.text)
        assert resp.json()["status_code"] == 400
    resp = api.submit("sleepy", {"seconds": 0}, tags={KEY_TAG: "ünïcode"})
    assert resp.status_code == 400
    resp = _keyed(api, "one", tags={KEY_TAG: "two"})
    assert resp.status_code == 400 and KEY_TAG in resp.json()["msg"]
    assert _run_ids(api) == []


def test_concurrent_posts_with_one_key_make_one_run(api: Api) -> None:
    key, clients = uuid.uuid4().hex, 8
    barrier = threading.Barrier(clients)

    def post(_: int) -> str:
        barrier.wait(timeout=30)
        return api.run_id(_keyed(api, key))

    with ThreadPoolExecutor(clients) as pool:
        ids = set(pool.map(post, range(clients)))
    assert len(ids) == 1
    assert _run_ids(api) == list(ids)
