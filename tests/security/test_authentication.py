"""Authentication at the API edge: every endpoint but service-info needs a valid bearer
token from the pinned issuer; failures are 401 ErrorResponses and are audited."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.helpers import WES, Server
from tests.wes_schema import assert_valid_wes

PROTECTED = [("GET", f"{WES}/runs"), ("POST", f"{WES}/runs"),
             ("GET", f"{WES}/runs/abc"), ("GET", f"{WES}/runs/abc/status"),
             ("GET", f"{WES}/runs/abc/tasks"), ("GET", f"{WES}/runs/abc/tasks/1"),
             ("POST", f"{WES}/runs/abc/cancel"), ("GET", "/spe/v1/workflows"),
             ("GET", "/spe/v1/workflows/tsv-summary"), ("GET", "/spe/v1/runs/abc/logs/stderr"),
             ("GET", "/spe/v1/runs/abc/outputs")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_but_service_info_requires_a_token(
        server: Server, method: str, path: str) -> None:
    resp = requests.request(method, server.url + path, timeout=10)
    assert resp.status_code == 401, resp.text
    assert resp.json()["status_code"] == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_unauthenticated_responses_match_the_official_document(server: Server) -> None:
    assert_valid_wes(requests.get(server.url + f"{WES}/runs", timeout=10))


def test_service_info_is_public(server: Server) -> None:
    resp = requests.get(server.url + f"{WES}/service-info", timeout=10)
    assert resp.status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt",
                                    "Bearer " + "a" * 20000])
def test_malformed_authorization_headers_are_401(server: Server, header: str) -> None:
    resp = requests.get(server.url + f"{WES}/runs", headers={"Authorization": header},
                        timeout=10)
    assert resp.status_code == 401


def test_an_expired_token_is_401(server: Server) -> None:
    past = int(time.time()) - 600
    token = server.token("expired", extra_claims={"iat": past, "nbf": past, "exp": past + 60})
    resp = requests.get(server.url + f"{WES}/runs",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 401
    assert "expired" in resp.json()["msg"]


def test_a_token_for_another_audience_is_401(server: Server) -> None:
    token = server.token("elsewhere", audience="another-service")
    resp = requests.get(server.url + f"{WES}/runs",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 401
    assert "audience" in resp.json()["msg"]


def test_a_token_with_a_tampered_payload_is_401(server: Server) -> None:
    header, _payload, signature = server.token("honest").split(".")
    forged = server.token("admin").split(".")[1]
    resp = requests.get(server.url + f"{WES}/runs",
                        headers={"Authorization": f"Bearer {header}.{forged}.{signature}"},
                        timeout=10)
    assert resp.status_code == 401


def test_authentication_failures_are_audited_without_the_token(server: Server) -> None:
    secret = "Bearer sneaky.token.value"
    requests.get(server.url + f"{WES}/runs", headers={"Authorization": secret}, timeout=10)
    time.sleep(0.2)
    engine = create_engine(f"sqlite:///{server.home / 'spe.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT actor, outcome, details FROM audit_events WHERE action='auth.failure'"
        )).all()
    assert rows, "no auth.failure event"
    assert all(r.outcome == "denied" for r in rows)
    assert not any("sneaky" in str(r.details) for r in rows)
    assert "sneaky" not in server.log_tail(100_000)


def test_the_development_issuer_refuses_to_serve_beyond_loopback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "SPE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "serve", "--host",
                             "0.0.0.0", "--port", "0"], env=env, capture_output=True,  # noqa: S104 - the refusal is the point
                            text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "loopback" in result.stderr
