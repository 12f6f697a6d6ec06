"""The Redis password (and the metrics scrape token) never reaches a log, in text or JSON
lines: not the settings line of `spe serve` or `spe worker`, not the dispatcher's warnings,
not Celery's connection errors, not ``/readyz``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from spe.adapters.queue.celery import redact_url
from tests.celery.cluster import Cluster
from tests.helpers import free_port
from tests.redis_server import RedisServer

SECRET = "s3cr3t-redis-password"
METRICS_TOKEN = "s3cr3t-metrics-token"


def test_redact_url_masks_only_the_password() -> None:
    assert redact_url(f"redis://:{SECRET}@10.0.0.5:6379/0") == "redis://:***@10.0.0.5:6379/0"
    assert redact_url(f"rediss://spe:{SECRET}@redis/1") == "rediss://spe:***@redis/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_log_shows_the_redis_password(tmp_path: Path, catalog_dir: Path,
                                         redis_server: RedisServer, log_format: str) -> None:
    del redis_server  # requested only to skip where Redis or celery are missing
    dead = RedisServer(tmp_path / "nowhere", free_port())  # nothing listens there
    with Cluster(tmp_path / "home", catalog_dir, dead, 0,
                 env={"SPE_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{dead.port}/0",
                      "SPE_LOG_FORMAT": log_format,
                      "SPE_METRICS_TOKEN": METRICS_TOKEN},
                 ready_path="/healthz") as c:  # not ready: its Redis is down
        api = c.server.api("secrets")
        assert api.submit("sleepy", {"seconds": 0}).status_code == 503
        worker = c.start_worker(wait=False)
        log = c.home / "worker-0.log"
        deadline = time.monotonic() + 60
        while b"Cannot connect" not in log.read_bytes() and time.monotonic() < deadline:
            assert worker.poll() is None, c.logs()
            time.sleep(0.1)
        assert b"Cannot connect" in log.read_bytes(), c.logs()
        c.kill(worker)
        logs = c.logs()
        readyz = requests.get(c.server.url + "/readyz", timeout=30)
        assert readyz.status_code == 503 and readyz.json()["reason"] == "redis"
        assert SECRET not in readyz.text
        if log_format == "json":  # every line of the API and the worker is a JSON object
            for path in (c.home / "server.log", log):
                for line in path.read_text().splitlines():
                    assert isinstance(json.loads(line), dict), line
    assert "unavailable" in logs and "127.0.0.1" in logs
    assert SECRET not in logs
    assert METRICS_TOKEN not in logs
