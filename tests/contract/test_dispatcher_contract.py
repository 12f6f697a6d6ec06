"""The Dispatcher contract (``spe.domain.ports.Dispatcher``), for every implementation:

- ``enqueue`` / ``enqueue_cancel`` return at once: the step runs elsewhere, later;
- what reaches the worker side is the kind of step and the run id, nothing else (workers
  re-read the run);
- the Celery dispatcher, when it cannot reach Redis, neither raises nor hangs (the
  database is the queue of record: a worker's reconciler picks the run up) and its
  ``ready()`` says so; it recovers by itself when Redis returns.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from spe.adapters.queue.inline import InlineDispatcher, NullDispatcher
from spe.domain.ports import Dispatcher
from tests.redis_server import RedisServer, databases, redis_or_skip

KINDS = {"spe.run.start": "start", "spe.run.cancel": "cancel"}


@dataclass
class Harness:
    dispatcher: Dispatcher
    received: Callable[[], list[tuple[str, str]]]  # (kind, run id) on the worker side


@pytest.fixture(scope="module")
def queue_url(redis_server: RedisServer) -> str:
    """A database of the session's Redis for this module's queues."""
    return redis_server.url(next(databases))


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory,
              redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of this module's own, since a test stops it (``redis_server`` first: it
    skips when Redis or celery are missing)."""
    server = redis_or_skip(tmp_path_factory.mktemp("redis-contract"))
    yield server
    server.stop()


def _inline() -> Harness:
    got: list[tuple[str, str]] = []
    dispatcher = InlineDispatcher(lambda kind, run_id: got.append((kind, run_id)), 1)
    return Harness(dispatcher, lambda: list(got))


def _null() -> Harness:
    dispatcher = NullDispatcher()
    return Harness(dispatcher, lambda: list(dispatcher.sent))


def _queued_messages(url: str) -> list[dict[str, object]]:
    import redis as redis_client

    client = redis_client.Redis.from_url(url, socket_timeout=2)
    try:  # kombu LPUSHes and workers BRPOP: the oldest message is the last one
        return [json.loads(raw) for raw in reversed(client.lrange("spe", 0, -1))]
    finally:
        client.close()


def _decoded(message: dict[str, object]) -> tuple[str, list[object], dict[str, object]]:
    headers = message["headers"]
    assert isinstance(headers, dict)
    args, kwargs, _embed = json.loads(base64.b64decode(str(message["body"])))
    return KINDS[headers["task"]], args, kwargs


def _celery(url: str, timeout: float = 1.0) -> Harness:
    from spe.adapters.queue.celery import BrokerOptions, CeleryDispatcher, make_celery

    dispatcher = CeleryDispatcher(make_celery(BrokerOptions(url, 5.0, timeout)), timeout)
    return Harness(dispatcher, lambda: _received(url))


def _received(url: str) -> list[tuple[str, str]]:
    """The (kind, run id) of each message waiting in the queue, oldest first."""
    out = []
    for message in _queued_messages(url):
        kind, args, kwargs = _decoded(message)
        assert kwargs == {} and len(args) == 1, "a message carries the run id only"
        out.append((kind, str(args[0])))
    return out


@pytest.fixture(params=["inline", "null", "celery"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "inline":
        return _inline()
    if request.param == "null":
        return _null()
    url: str = request.getfixturevalue("queue_url")
    import redis as redis_client

    with redis_client.Redis.from_url(url) as client:
        client.flushdb()  # an empty queue for each test
    return _celery(url)


def _eventually(get: Callable[[], list[tuple[str, str]]], n: int,
                timeout: float = 5.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while len(got := get()) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


def test_messages_carry_the_step_and_the_run_id_only(harness: Harness) -> None:
    harness.dispatcher.enqueue("run-a")
    harness.dispatcher.enqueue_cancel("run-b")
    assert _eventually(harness.received, 2) == [("start", "run-a"), ("cancel", "run-b")]


def test_enqueue_returns_at_once(harness: Harness) -> None:
    began = time.monotonic()
    for i in range(20):
        harness.dispatcher.enqueue(f"run-{i}")
    assert time.monotonic() - began < 2.0
    assert len(_eventually(harness.received, 20)) == 20


def test_celery_dispatcher_without_redis_neither_raises_nor_hangs_and_recovers(
        own_redis: RedisServer) -> None:
    from spe.adapters.queue.celery import BrokerOptions, CeleryDispatcher, make_celery

    redis = own_redis
    url = redis.url(2)
    dispatcher = CeleryDispatcher(make_celery(BrokerOptions(url, 5.0, 1.0)), 1.0)
    assert dispatcher.ready()
    redis.stop()
    try:
        began = time.monotonic()
        assert not dispatcher.ready()
        dispatcher.enqueue("lost-run")  # logged, not raised: a reconciler starts it
        dispatcher.enqueue_cancel("lost-cancel")
        assert time.monotonic() - began < 5.0
    finally:
        redis.start()
    assert dispatcher.ready()  # the same objects: nothing was restarted
    dispatcher.enqueue("run-after")
    assert _eventually(lambda: _received(url), 1) == [("start", "run-after")]
