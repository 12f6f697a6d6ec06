"""Observability of the service built in this process (fast tier): ``/metrics`` answers
404 without a configured scrape token, 401 without the right one (counted as an auth
failure), and the metrics with it, also when only the token's SHA-256 is configured; the
run lifecycle and the release decision reach the log with their structured fields; a
request id is kept or replaced; ``/readyz`` lists its checks."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from spe.adapters.observability.logs import ContextFilter
from tests.helpers import WES
from tests.inprocess.harness import InProcess, in_process
from tests.inprocess.test_services_in_process import _released, _request, _vote

TOKEN = "in-process-scrape-token"


@pytest.fixture
def hashed(tmp_path: Path, catalog_dir: Path) -> Iterator[InProcess]:
    """The service with only the SHA-256 of the scrape token configured."""
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    yield from in_process(tmp_path / "home", catalog_dir, metrics_token=f"sha256:{digest}")


def test_metrics_are_off_without_a_configured_token(spe: InProcess) -> None:
    assert spe.client.get("/metrics").status_code == 404
    assert spe.client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 404


def test_metrics_need_the_scrape_token_and_count_the_run(hashed: InProcess) -> None:
    run_id = hashed.run_id(hashed.submit("alice", "sleepy", {"seconds": 0}))
    assert hashed.wait("alice", run_id) == "COMPLETE"
    assert hashed.client.get("/metrics").status_code == 401
    wrong = hashed.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401 and wrong.json()["status_code"] == 401
    user_token = hashed.headers("alice")
    assert hashed.client.get("/metrics", headers=user_token).status_code == 401
    resp = hashed.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(resp.text) for s in f.samples}
    assert found[("spe_jobs", (("kind", "run"), ("state", "COMPLETE")))] == 1
    assert found[("spe_auth_failures_total", (("reason", "metrics_token"),))] == 3
    assert found[("spe_http_request_duration_seconds_count",
                  (("operation", "RunWorkflow"), ("status", "2xx")))] == 1
    assert found[("spe_reconciler_lag_seconds", ())] < 5


def test_the_run_life_and_the_release_decision_are_logged(
        spe: InProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(ContextFilter())  # as the service's handler does
    resp = spe.submit("alice", "sleepy", {"seconds": 0}, **{"X-Request-Id": "req-42"})
    assert resp.headers["X-Request-Id"] == "req-42"
    run_id = spe.run_id(resp)
    assert spe.wait("alice", run_id) == "COMPLETE"
    req = _request(spe, run_id).json()
    for user in ("rita", "rex"):
        for path in ("results/done.txt", "results/first.txt"):
            assert _vote(spe, user, req["id"], path).status_code == 200
    assert _released(spe, req["id"]) == "RELEASED"

    life = [r for r in caplog.records if getattr(r, "run_id", "") == run_id
            and hasattr(r, "event")]
    events = [r.event for r in life]  # type: ignore[attr-defined]
    assert events[0] == "run.accepted" and "run.started" in events
    assert "run.ended" in events
    assert getattr(life[0], "request_id", "") == "req-42"
    ended = next(r for r in life if r.event == "run.ended")  # type: ignore[attr-defined]
    assert ended.state == "COMPLETE"  # type: ignore[attr-defined]
    assert ended.duration_seconds is not None  # type: ignore[attr-defined]
    decided = [r for r in caplog.records if getattr(r, "event", "") == "release.decided"]
    assert len(decided) == 1
    assert decided[0].state == "APPROVED"  # type: ignore[attr-defined]
    assert decided[0].release_id == req["id"]  # type: ignore[attr-defined]
    released = [r for r in caplog.records if getattr(r, "event", "") == "release.state"
                and getattr(r, "state", "") == "RELEASED"]
    assert released and released[0].run_id == run_id  # type: ignore[attr-defined]


def test_a_client_error_is_logged_at_info(spe: InProcess,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert spe.get("alice", f"{WES}/runs/0123456789abcdef0123456789abcdef").status_code == 404
    answered = [r for r in caplog.records if getattr(r, "status", 0) == 404]
    assert answered and all(r.levelno == logging.INFO for r in answered)


def test_readyz_lists_its_checks_and_healthz_stays_liveness(spe: InProcess) -> None:
    body = spe.client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]
    assert spe.client.get("/healthz").json() == {"status": "ok"}


def test_readyz_fails_for_a_configured_zone_root_that_is_missing_and_never_makes_it(
        tmp_path: Path, catalog_dir: Path) -> None:
    missing = tmp_path / "share-not-mounted" / "quarantine"
    for service in in_process(tmp_path / "home", catalog_dir, quarantine_dir=missing):
        resp = service.client.get("/readyz")
        assert resp.status_code == 503
        body = resp.json()
        assert body["reason"] == "storage"
        assert "1 of 2 locations unreachable" in body["checks"]["storage"]["detail"]
        assert body["checks"]["database"]["ok"] is True
    assert not missing.exists() and not missing.parent.exists()
