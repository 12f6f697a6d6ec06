"""The pieces of observability on their own: log lines (JSON and text, ids from the
context, secrets masked, client errors at INFO), the labels of the HTTP and auth metrics
(a closed set), request ids, the scrape token's digest, the readiness probes (against a
stand-in ``scontrol``, a real HTTP server, real directories) and their cache, the
database collector on SQLite, and the redacted settings."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.lifecycle import LoggedRunRepository
from spe.adapters.db.stats import release_backlog, span_histograms
from spe.adapters.db.tables import RunRow
from spe.adapters.observability import readiness
from spe.adapters.observability.logs import (
    TEXT_FORMAT,
    ClientErrorsAtInfo,
    ContextFilter,
    JsonLineFormatter,
    TextFormatter,
    redact,
)
from spe.adapters.observability.metrics import (
    DURATION_BOUNDS,
    LATENCY_BOUNDS,
    DatabaseCollector,
    JobSource,
)
from spe.api.observability import (
    AUTH_REASONS,
    auth_reason,
    operation_of,
    readyz_view,
    request_id_of,
    token_digest,
)
from spe.config import Settings
from spe.domain import log_context
from spe.domain.models import RunEnding, Visibility
from spe.domain.states import RunState
from spe.domain.states import RunState as S
from tests.contract.test_run_repository_contract import make_run

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"


def emit(formatter: logging.Formatter, logger: str, level: int, msg: str,
         *args: object, exc_info: bool = False, **extra: Any) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(ClientErrorsAtInfo())
    handler.setFormatter(formatter)
    log = logging.getLogger(logger)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.log(level, msg, *args, exc_info=exc_info, extra=extra)
    finally:
        log.removeHandler(handler)
    return stream.getvalue().strip()


def test_a_json_line_carries_the_ids_of_its_context_and_its_fields() -> None:
    with log_context.bound(log_context.request_id, "req-1"), log_context.run("run-9"):
        line = emit(JsonLineFormatter(), "spe.test", logging.INFO, "run %s ended", "run-9",
                    event="run.ended", duration_seconds=1.5)
    doc = json.loads(line)
    assert doc["message"] == "run run-9 ended" and doc["level"] == "INFO"
    assert doc["logger"] == "spe.test" and doc["time"].startswith("20")
    assert doc["request_id"] == "req-1" and doc["run_id"] == "run-9"
    assert doc["event"] == "run.ended" and doc["duration_seconds"] == 1.5


def test_a_json_line_outside_any_request_has_no_empty_ids() -> None:
    doc = json.loads(emit(JsonLineFormatter(), "spe.test", logging.INFO, "hello"))
    assert "request_id" not in doc and "run_id" not in doc and "context" not in doc


@pytest.mark.parametrize("secret", [
    f"Authorization: Bearer {JWT}", JWT, "redis://:hunter2-password@10.0.0.5:6379/0",
    "postgresql+psycopg://spe:hunter2-password@db/spe", "bearer opaque-token-123"])
@pytest.mark.parametrize("formatter", [JsonLineFormatter(), TextFormatter(TEXT_FORMAT)],
                         ids=["json", "text"])
def test_secrets_are_masked_in_messages_fields_and_tracebacks(
        secret: str, formatter: logging.Formatter) -> None:
    hidden = ("hunter2-password", "c2lnbmF0dXJlLXBhcnQ", "opaque-token-123")
    try:
        raise RuntimeError(f"connect failed: {secret}")
    except RuntimeError:
        line = emit(formatter, "spe.test", logging.ERROR, "failed: %s", secret,
                    exc_info=True, detail=secret)
    assert "connect failed" in line
    assert not any(h in line for h in hidden), line


def test_redact_keeps_what_is_not_a_secret() -> None:
    text = "GET /ga4gh/wes/v1/runs/abc 200; send 'Authorization: Bearer <token>'"
    assert redact(text) == text
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_connexion_validation_errors_of_a_client_are_logged_at_info() -> None:
    line = emit(JsonLineFormatter(), "connexion.validators.form_data", logging.ERROR,
                "Validation error: 'x' is not valid")
    assert json.loads(line)["level"] == "INFO"
    server = emit(JsonLineFormatter(), "spe.api.errors", logging.ERROR, "unhandled error")
    assert json.loads(server)["level"] == "ERROR"


def test_text_lines_name_the_ids_at_the_end() -> None:
    with log_context.run("run-7"):
        line = emit(TextFormatter(TEXT_FORMAT), "spe.test", logging.INFO, "started")
    assert line.endswith("spe.test: started [run_id=run-7]")


@pytest.mark.parametrize(("message", "label"), [
    ("authentication required: send 'Authorization: Bearer <token>'", "missing"),
    ("the Authorization header must be 'Bearer <token>'", "malformed"),
    ("malformed token", "malformed"), ("token too long", "too_long"),
    ("Signature has expired", "expired"), ("token expired", "expired"),
    ("token audience mismatch", "audience"), ("token issuer mismatch", "issuer"),
    ("unknown signing key", "signature"), ("algorithm not allowed", "signature"),
    ("token is not active", "inactive"),
    ("too many unauthenticated requests from this address", "rate_limited"),
    ("something the verifier never said before", "other")])
def test_auth_failure_reasons_map_to_a_closed_set(message: str, label: str) -> None:
    assert auth_reason(message) == label
    assert label in AUTH_REASONS


def test_the_operation_label_is_the_operation_id_or_a_fixed_name_never_a_path() -> None:
    routed = {"path": "/ga4gh/wes/v1/runs/abc", "extensions": {"connexion_routing": {
        "operation_id": "spe.api.wes.GetRunLog"}}}
    assert operation_of(routed) == "GetRunLog"
    assert operation_of({"path": "/readyz"}) == "readyz"
    assert operation_of({"path": "/spe/ui/index.html"}) == "ui"
    assert operation_of({"path": "/ga4gh/wes/v1/runs/abc/nothing"}) == "unrouted"
    assert operation_of({"path": "/random/123456"}) == "unrouted"


@pytest.mark.parametrize(("sent", "kept"), [
    (b"abc-123_X.y:z", True), (b"a" * 128, True), (b"a" * 129, False), (b"", False),
    (b"bad id", False), (b"evil\r\ninjected: 1", False), (b"\xff\xfe", False)])
def test_a_request_id_is_kept_only_when_it_is_safe(sent: bytes, kept: bool) -> None:
    rid = request_id_of({"headers": [(b"x-request-id", sent)]})
    assert (rid == sent.decode("latin-1")) is kept
    assert len(rid) <= 128


def test_the_scrape_token_may_be_given_as_its_sha256() -> None:
    digest = hashlib.sha256(b"tok").hexdigest()
    assert token_digest(f"sha256:{digest}") == token_digest("tok")


def test_the_settings_log_line_masks_the_scrape_token() -> None:
    settings = Settings(metrics_token="very-secret-scrape-token")  # type: ignore[arg-type]
    assert "very-secret-scrape-token" not in json.dumps(settings.redacted())
    assert settings.redacted()["metrics_token"] == "***"


# --- readiness ------------------------------------------------------------------------------

def test_a_check_caches_its_answer_and_turns_an_exception_into_a_failure() -> None:
    calls: list[int] = []
    now = [100.0]

    def probe() -> tuple[bool, str]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("secret://user:pw@host")
        return True, "fine"

    check = readiness.Check("x", probe, cache_seconds=10, clock=lambda: now[0])
    assert check.run().ok and len(calls) == 1
    assert check.run().cached and len(calls) == 1
    now[0] += 11
    failed = check.run()
    assert not failed.ok and failed.detail == "failed (OSError)" and len(calls) == 2


@pytest.fixture
def scontrol(tmp_path: Path) -> Iterator[Path]:
    script = tmp_path / "scontrol"
    yield script


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_the_slurm_check_runs_scontrol_ping(scontrol: Path) -> None:
    _script(scontrol, 'test "$1" = ping || exit 9\n'
            'echo "Slurmctld(primary) at node1 is UP"')
    assert readiness.slurm_controller(scontrol, 5)() == (True, "controller is UP")
    _script(scontrol, 'echo "Slurmctld(primary) at node1 is DOWN"; exit 1')
    assert readiness.slurm_controller(scontrol, 5)() == (False, "scontrol ping exit 1")
    _script(scontrol, "sleep 5")
    ok, detail = readiness.slurm_controller(scontrol, 0.2)()
    assert not ok and "timed out" in detail


class _Discovery(http.server.BaseHTTPRequestHandler):
    issuer = ""

    def do_GET(self) -> None:
        body = json.dumps({"issuer": self.issuer}).encode()
        self.send_response(200 if self.path == "/.well-known/openid-configuration" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_identity_provider_check_reads_the_discovery_document() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        _Discovery.issuer = url
        assert readiness.discovery(url, 5)() == (True, "discovery document answered")
        _Discovery.issuer = "https://elsewhere.example"
        assert readiness.discovery(url, 5)()[1] == "discovery document names another issuer"
        assert readiness.discovery(url + "/nothing", 5)()[0] is False
    finally:
        server.shutdown()
        server.server_close()
    ok, detail = readiness.discovery(url, 1)()
    assert not ok and "unreachable" in detail


def test_the_storage_check_needs_every_zone_directory(tmp_path: Path) -> None:
    good = tmp_path / "quarantine"
    good.mkdir()

    def no_store(location: str) -> Any:
        raise AssertionError(location)

    assert readiness.storage(lambda: [str(good)], no_store)()[0] is True
    ok, detail = readiness.storage(lambda: [str(good), str(tmp_path / "gone")], no_store)()
    assert not ok and "1 of 2" in detail and "gone" in detail


def test_the_storage_check_hides_an_s3_location_that_fails() -> None:
    def failing(location: str) -> Any:
        raise RuntimeError("no credentials")

    ok, detail = readiness.storage(lambda: ["s3://bucket/secret-prefix"], failing)()
    assert not ok and "secret-prefix" not in detail and "s3://..." in detail


# --- the database collector -----------------------------------------------------------------

def test_the_database_collector_counts_states_and_histograms(
        sessions: sessionmaker[Session]) -> None:
    repo = LoggedRunRepository(sessions)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    done, waiting = make_run(), make_run()
    done.created_at = waiting.created_at = t0
    repo.add(done)
    repo.add(waiting)
    assert repo.transition(done.id, frozenset({S.QUEUED}), S.INITIALIZING)
    assert repo.transition(done.id, frozenset({S.INITIALIZING}), S.RUNNING,
                           t0 + timedelta(seconds=3))
    assert repo.claim_finish(done.id, S.RUNNING, "tok", t0, t0 + timedelta(hours=1))
    assert repo.finish(done.id, "tok", S.RUNNING,
                       RunEnding(S.COMPLETE, t0 + timedelta(seconds=123), 0, [], "ok"))
    source = JobSource(
        "run", [s.value for s in RunState],
        lambda: repo.state_counts(Visibility("", everything=True)),
        lambda: span_histograms(sessions, RunRow.created_at, RunRow.start_time, [],
                                LATENCY_BOUNDS),
        lambda: span_histograms(sessions, RunRow.start_time, RunRow.end_time,
                                [RunRow.engine, RunRow.state], DURATION_BOUNDS))
    registry = CollectorRegistry()
    registry.register(DatabaseCollector([source], lambda: release_backlog(sessions),
                                        ["IN_REVIEW"]))
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(generate_latest(registry).decode())
             for s in f.samples}
    assert found[("spe_jobs", (("kind", "run"), ("state", "COMPLETE")))] == 1
    assert found[("spe_queue_depth", (("kind", "run"),))] == 1
    latency = ("spe_job_start_latency_seconds", (("kind", "run"),))
    assert found[(latency[0] + "_count", latency[1])] == 1
    assert found[(latency[0] + "_sum", latency[1])] == pytest.approx(3.0, abs=0.01)
    assert found[(latency[0] + "_bucket", (("kind", "run"), ("le", "2.0")))] == 0
    assert found[(latency[0] + "_bucket", (("kind", "run"), ("le", "5.0")))] == 1
    labels = (("engine", done.engine), ("kind", "run"), ("state", "COMPLETE"))
    assert found[("spe_job_duration_seconds_sum", labels)] == pytest.approx(120.0, abs=0.01)
    assert found[("spe_job_duration_seconds_bucket", (*labels[:2], ("le", "60.0"),
                                                        labels[2]))] == 0
    assert found[("spe_job_duration_seconds_bucket", (*labels[:2], ("le", "300.0"),
                                                        labels[2]))] == 1
    assert found[("spe_airlock_requests", (("state", "IN_REVIEW"),))] == 0
    assert found[("spe_database_scrape_ok", ())] == 1


def test_a_database_that_fails_gives_scrape_ok_zero_not_a_failed_scrape() -> None:
    def broken() -> dict[str, int]:
        raise OSError("database gone")

    source = JobSource("run", ["QUEUED"], broken, list, list)
    registry = CollectorRegistry()
    registry.register(DatabaseCollector([source], list, []))
    text = generate_latest(registry).decode()
    assert "spe_database_scrape_ok 0.0" in text and "spe_jobs{" not in text


def test_readyz_is_503_when_a_required_check_fails_and_degraded_for_an_optional_one() -> None:
    results = {"database": readiness.Result(True, "fine"),
               "redis": readiness.Result(False, "no answer to ping")}
    strict = readyz_view(lambda: results)
    body, status = strict()
    assert status == 503 and body["status"] == "unavailable" and body["reason"] == "redis"
    assert body["checks"]["redis"]["ok"] is False
    lenient = readyz_view(lambda: results, frozenset({"redis"}))
    body, status = lenient()
    assert status == 200 and body["status"] == "degraded" and body["reason"] == "redis"
    all_fine = readyz_view(lambda: {"database": readiness.Result(True)})
    assert all_fine() == ({"status": "ready", "checks": {"database": {
        "ok": True, "detail": "", "seconds": 0.0, "cached": False}}}, 200)


def test_the_logged_repository_tells_each_change_once_and_only_when_it_happened(
        sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spe.runs")
    repo = LoggedRunRepository(sessions)
    run = make_run()
    repo.add(run)
    assert repo.transition(run.id, frozenset({S.QUEUED}), S.CANCELED)
    assert not repo.transition(run.id, frozenset({S.QUEUED}), S.INITIALIZING)  # lost CAS
    assert repo.mark_purged(run.id, datetime.now(UTC), "purged")
    assert not repo.mark_purged(run.id, datetime.now(UTC), "again")
    events = [(r.event, getattr(r, "state", "")) for r in caplog.records]  # type: ignore[attr-defined]
    assert events == [("run.accepted", "QUEUED"), ("run.state", "CANCELED"),
                      ("run.ended", "CANCELED"), ("run.purged", "")]
    assert all(r.run_id == run.id for r in caplog.records)  # type: ignore[attr-defined]


def test_a_worker_whose_metrics_port_is_taken_runs_on_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    import socket
    from types import SimpleNamespace

    from spe.observability_wiring import serve_worker_metrics

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(worker_metrics_port=port)
        with caplog.at_level(logging.ERROR, logger="spe.observability_wiring"):
            serve_worker_metrics(settings, SimpleNamespace(last_success=None))  # type: ignore[arg-type]
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
