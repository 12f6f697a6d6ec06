"""A real `spe serve` with JSON logs, the access log and a scrape token runs a workflow;
then ``/metrics`` shows that run's life (counts by state, latency and duration histograms
with samples, HTTP latency by operation, auth failures by reason) with bounded labels, the
JSON log lines parse and carry the run id from accepted to ended (and the request id of the
submission), client errors are logged at INFO, and no token reaches the log. On PostgreSQL
the histograms come from the same SQL, and ``/readyz`` answers 503 naming the database once
the database is gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import WES, Server
from tests.postgres import PostgresServer

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"
REQUEST_ID = "obs-test-request-1"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    srv = Server(home=tmp_path_factory.mktemp("home-obs"), catalog=catalog_dir, env_extra={
        "SPE_LOG_FORMAT": "json", "SPE_ACCESS_LOG": "true",
        "SPE_METRICS_TOKEN": SCRAPE_TOKEN}).start()
    yield srv
    srv.stop()


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = requests.get(server.url + "/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def json_lines(server: Server) -> list[dict[str, Any]]:
    lines = (server.home / "server.log").read_text().splitlines()
    parsed, other = [], []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            other.append(line)
    assert not other, f"lines that are not JSON: {other[:10]}"
    return parsed


def test_metrics_and_json_logs_show_a_runs_life(observed: Server) -> None:
    api = observed.api("observer")
    resp = api.submit("sleepy", {"seconds": 1}, headers={"X-Request-Id": REQUEST_ID})
    assert resp.headers["X-Request-Id"] == REQUEST_ID
    run_id = api.run_id(resp)
    assert api.wait(run_id) == "COMPLETE", observed.log_tail()
    assert requests.get(observed.url + f"{WES}/runs", timeout=10).status_code == 401
    bad = requests.get(observed.url + "/metrics", timeout=10,
                       headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    assert requests.get(observed.url + "/metrics", timeout=10).status_code == 401

    samples = scrape(observed)
    assert value(samples, "spe_jobs", kind="run", state="COMPLETE") >= 1
    assert value(samples, "spe_jobs", kind="run", state="RUNNING") == 0
    assert value(samples, "spe_jobs", kind="task", state="COMPLETE") == 0  # runs only
    assert value(samples, "spe_queue_depth", kind="run") == 0
    assert value(samples, "spe_job_start_latency_seconds_count", kind="run") >= 1
    assert value(samples, "spe_job_start_latency_seconds_bucket", kind="run", le="+Inf") >= 1
    done = {"kind": "run", "engine": "snakemake", "state": "COMPLETE"}
    assert value(samples, "spe_job_duration_seconds_count", **done) >= 1
    assert value(samples, "spe_job_duration_seconds_sum", **done) >= 1.0  # it slept 1 s
    assert value(samples, "spe_job_duration_seconds_bucket", le="1.0", **done) \
        < value(samples, "spe_job_duration_seconds_bucket", le="+Inf", **done)
    assert value(samples, "spe_http_request_duration_seconds_count",
                 operation="RunWorkflow", status="2xx") >= 1
    assert value(samples, "spe_http_request_duration_seconds_count",
                 operation="GetRunStatus", status="2xx") >= 1
    assert value(samples, "spe_auth_failures_total", reason="missing") >= 1
    assert value(samples, "spe_auth_failures_total", reason="metrics_token") >= 2
    assert value(samples, "spe_airlock_requests", state="IN_REVIEW") == 0
    assert value(samples, "spe_reconciler_lag_seconds") < 10
    assert value(samples, "spe_database_scrape_ok") == 1
    labels = {v for _, pairs in samples for _, v in pairs}
    assert not any(run_id in v for v in labels), "a run id became a label value"

    lines = json_lines(observed)
    life = [line for line in lines if line.get("run_id") == run_id and "event" in line]
    events = [line["event"] for line in life]
    assert events[0] == "run.accepted" and events[-1] == "run.ended", events
    assert "run.started" in events and "run.state" in events
    accepted = life[0]
    assert accepted["request_id"] == REQUEST_ID and accepted["workflow"] == "sleepy@1.0.0"
    started = next(line for line in life if line["event"] == "run.started")
    assert started["executor"] == "local" and started["executor_id"].isdigit()
    ended = life[-1]
    assert ended["state"] == "COMPLETE" and ended["duration_seconds"] >= 1.0
    states = [line["state"] for line in life if line["event"] == "run.state"]
    assert states[-1] == "COMPLETE" and "RUNNING" in states
    access = [line for line in lines if line.get("event") == "http.request"]
    submit = next(line for line in access if line.get("request_id") == REQUEST_ID)
    assert submit["operation"] == "RunWorkflow" and submit["status"] == 200
    client_errors = [line for line in access if 400 <= line["status"] < 500]
    assert client_errors and all(line["level"] == "INFO" for line in client_errors)
    assert not any(line["level"] == "ERROR" for line in lines), [
        line for line in lines if line["level"] == "ERROR"]
    text = (observed.home / "server.log").read_text()
    assert api.token not in text and SCRAPE_TOKEN not in text


def test_a_bad_request_id_is_replaced_and_answered(observed: Server) -> None:
    resp = requests.get(observed.url + "/healthz", timeout=10,
                        headers={"X-Request-Id": "bad id\twith spaces"})
    rid = resp.headers["X-Request-Id"]
    assert rid != "bad id\twith spaces" and len(rid) == 32


def test_readyz_lists_each_check(observed: Server) -> None:
    resp = requests.get(observed.url + "/readyz", timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "storage"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.postgres
def test_on_postgres_metrics_work_and_readyz_fails_when_the_database_goes(
        tmp_path: Path, catalog_dir: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    srv = Server(home=tmp_path / "home", catalog=catalog_dir, env_extra={
        "SPE_DATABASE_URL": url, "SPE_METRICS_TOKEN": SCRAPE_TOKEN}).start()
    try:
        api = srv.api("pg-observer")
        run_id = api.run_id(api.submit("sleepy", {"seconds": 1}))
        assert api.wait(run_id) == "COMPLETE", srv.log_tail()
        samples = scrape(srv)
        done = {"kind": "run", "engine": "snakemake", "state": "COMPLETE"}
        assert value(samples, "spe_job_duration_seconds_count", **done) == 1
        assert value(samples, "spe_job_duration_seconds_sum", **done) >= 1.0
        assert value(samples, "spe_job_start_latency_seconds_count", kind="run") == 1

        postgres_server.drop_database(url.rsplit("/", 1)[-1])
        resp = requests.get(srv.url + "/readyz", timeout=30)
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["status"] == "unavailable" and body["reason"] == "database"
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["storage"]["ok"] is True
        assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
        assert value(scrape(srv), "spe_database_scrape_ok") == 0
    finally:
        srv.stop()
