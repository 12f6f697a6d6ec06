"""A TES task is a job of kind ``task`` beside runs: `/metrics` counts it by state with its
start latency and duration (engine ``tes``), and the JSON log tells its life (accepted,
started, ended) under its id with ``kind: task``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Server
from tests.tes.conftest import import_image, two_projects
from tests.tes.test_tes_api import create, task_body, wait

TOKEN = "tes-scrape-token"


@pytest.fixture(scope="module")
def observed_tes(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
                 busybox: Path) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("tes-obs")
    home = base / "home"
    home.mkdir(mode=0o700)
    import_image(home, busybox, "busybox", "1.36", "alpine")
    policy = two_projects(base / "policy.yaml", base / "data")
    server = Server(home=home, catalog=catalog_dir, env_extra={
        "SPE_POLICY_FILE": str(policy), "SPE_LOG_FORMAT": "json",
        "SPE_METRICS_TOKEN": TOKEN}).start()
    yield server
    server.stop()


def test_a_task_is_counted_and_logged_as_a_job_of_kind_task(observed_tes: Server) -> None:
    resp = create(observed_tes, task_body(["sh", "-c", "sleep 1"]))
    assert resp.status_code == 200, resp.text
    task_id = resp.json()["id"]
    assert wait(observed_tes, task_id)["state"] == "COMPLETE", observed_tes.log_tail()

    text = requests.get(observed_tes.url + "/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {TOKEN}"}).text
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(text) for s in f.samples}
    assert found[("spe_jobs", (("kind", "task"), ("state", "COMPLETE")))] == 1
    assert found[("spe_jobs", (("kind", "run"), ("state", "COMPLETE")))] == 0
    assert found[("spe_job_start_latency_seconds_count", (("kind", "task"),))] == 1
    done = (("engine", "tes"), ("kind", "task"), ("state", "COMPLETE"))
    assert found[("spe_job_duration_seconds_count", done)] == 1
    assert found[("spe_http_request_duration_seconds_count",
                  (("operation", "CreateTask"), ("status", "2xx")))] == 1

    lines = [json.loads(line) for line in
             (observed_tes.home / "server.log").read_text().splitlines()]
    life = [line for line in lines if line.get("run_id") == task_id and "event" in line]
    assert life[0]["event"] == "run.accepted" and life[0]["kind"] == "task"
    assert "run.started" in [line["event"] for line in life]
    assert life[-1]["event"] == "run.ended" and life[-1]["kind"] == "task"
