"""What generic GA4GH clients and browser dashboards meet (issue 14): JSON and urlencoded
``POST /runs``, opt-in CORS, RFC 6750 challenges, plain validation errors, and a
service-info that offers only what is installed. The real clients (gxy-wes, ai4gh)
against a real server are in tests/api/test_generic_clients.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import WES
from tests.inprocess.harness import InProcess, in_process

DASHBOARD = "https://dash.example.org"
REQUEST = {"workflow_url": "sleepy", "workflow_type": "SMK", "workflow_type_version": "9"}


class StandInNextflow:
    """Stands in for the nextflow adapter: installed (a version) or absent ('')."""

    supported_options = frozenset({"max_cpus"})

    def __init__(self, version: str) -> None:
        self._version = version

    def version(self) -> str:
        return self._version


@pytest.fixture
def cors(tmp_path: Path, catalog_dir: Path) -> Iterator[InProcess]:
    yield from in_process(tmp_path / "home", catalog_dir, cors_allowed_origins=(DASHBOARD,))


def test_a_json_run_request_with_object_fields_makes_a_run(spe: InProcess) -> None:
    body = {**REQUEST, "workflow_params": {"seconds": 0}, "tags": {"note": "json"}}
    run_id = spe.run_id(spe.post("alice", f"{WES}/runs", json=body))
    assert spe.wait("alice", run_id) == "COMPLETE"
    run = spe.get("alice", f"{WES}/runs/{run_id}").json()
    assert run["request"]["workflow_params"] == {"seconds": 0, "fail": False}
    assert run["request"]["tags"]["note"] == "json"


def test_a_json_run_request_may_send_the_objects_json_encoded(spe: InProcess) -> None:
    body = {**REQUEST, "workflow_params": json.dumps({"seconds": 0})}
    run_id = spe.run_id(spe.post("alice", f"{WES}/runs", json=body))
    assert spe.wait("alice", run_id) == "COMPLETE"


def test_an_urlencoded_run_request_makes_a_run(spe: InProcess) -> None:
    form = {**REQUEST, "workflow_params": json.dumps({"seconds": 0})}
    resp = spe.post("alice", f"{WES}/runs", data=form)
    run_id = spe.run_id(resp)
    assert spe.wait("alice", run_id) == "COMPLETE"


def test_json_and_form_requests_follow_the_same_submission_rules(spe: InProcess) -> None:
    off_list = {**REQUEST, "workflow_url": "https://example.org/evil.smk"}
    assert spe.post("alice", f"{WES}/runs", json=off_list).status_code == 403
    assert spe.post("alice", f"{WES}/runs", data=off_list).status_code == 403
    bad_params = {**REQUEST, "workflow_params": {"seconds": "soon"}}
    resp = spe.post("alice", f"{WES}/runs", json=bad_params)
    assert resp.status_code == 400 and "/seconds" in resp.text
    assert spe.post("nobody", f"{WES}/runs", json=REQUEST).status_code == 403


def test_a_json_request_with_a_field_of_the_wrong_type_is_400_with_its_pointer(
        spe: InProcess) -> None:
    resp = spe.post("alice", f"{WES}/runs", json={**REQUEST, "workflow_type": 9})
    assert resp.status_code == 400
    msg = resp.json()["msg"]
    assert "/workflow_type" in msg and "Failed validating" not in msg
    missing = spe.post("alice", f"{WES}/runs", json={"workflow_type": "SMK"})
    assert missing.status_code == 400 and "workflow_url" in missing.json()["msg"]
    assert spe.post("alice", f"{WES}/runs", json=[1, 2]).status_code == 400


def test_query_validation_errors_are_plain_words_naming_the_parameter(
        spe: InProcess) -> None:
    resp = spe.get("alice", f"{WES}/runs", params={"page_size": "abc"})
    assert resp.status_code == 400
    msg = resp.json()["msg"]
    assert msg == "page_size (query parameter): 'abc' is not of type 'integer'"


def test_a_refused_token_gets_an_rfc6750_invalid_token_challenge(spe: InProcess) -> None:
    bad = spe.client.get(f"{WES}/runs", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == 'Bearer realm="spe", error="invalid_token"'
    none = spe.client.get(f"{WES}/runs")
    assert none.status_code == 401
    assert none.headers["WWW-Authenticate"] == 'Bearer realm="spe"'


def test_cors_is_off_by_default(spe: InProcess) -> None:
    resp = spe.client.get(f"{WES}/service-info", headers={"Origin": DASHBOARD})
    assert "access-control-allow-origin" not in resp.headers
    pre = spe.client.options(f"{WES}/runs", headers={
        "Origin": DASHBOARD, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_preflight_of_an_allowed_origin_needs_no_token(cors: InProcess) -> None:
    pre = cors.client.options(f"{WES}/runs", headers={
        "Origin": DASHBOARD, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == DASHBOARD
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in pre.headers


def test_cors_simple_requests_of_an_allowed_origin_carry_the_header(cors: InProcess) -> None:
    resp = cors.get("alice", f"{WES}/runs", headers={"Origin": DASHBOARD})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == DASHBOARD
    refused = cors.client.get(f"{WES}/runs", headers={"Origin": DASHBOARD})
    assert refused.status_code == 401  # errors carry it too, so the page can read them
    assert refused.headers["access-control-allow-origin"] == DASHBOARD


def test_cors_refuses_other_origins(cors: InProcess) -> None:
    other = "https://evil.example.net"
    resp = cors.get("alice", f"{WES}/runs", headers={"Origin": other})
    assert "access-control-allow-origin" not in resp.headers
    pre = cors.client.options(f"{WES}/runs", headers={
        "Origin": other, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 400
    assert "access-control-allow-origin" not in pre.headers


def test_a_wildcard_or_a_path_is_not_an_allowed_origin(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from spe.config import Settings

    for origin in ("*", "https://dash.example.org/app", "dash.example.org"):
        with pytest.raises(ValidationError, match="not an origin"):
            Settings(home=tmp_path, cors_allowed_origins=(origin,))


def test_an_engine_that_is_not_installed_is_not_offered(spe: InProcess) -> None:
    spe.service.execution.engines["nextflow"] = StandInNextflow("")  # type: ignore[assignment]
    info = spe.client.get(f"{WES}/service-info").json()
    assert set(info["workflow_type_versions"]) == {"SMK"}
    assert "nextflow" not in info["workflow_engine_versions"]
    assert "max_cpus" not in {p["name"] for p in info["default_workflow_engine_parameters"]}
    assert info["supported_filesystem_protocols"] == ["dataset", "file"]
    refs = {w["ref"] for w in spe.get("alice", "/spe/v1/workflows").json()["workflows"]}
    assert "nf-wordcount@1.0.0" not in refs and "sleepy@1.0.0" in refs
    assert spe.get("alice", "/spe/v1/workflows/nf-wordcount").status_code == 404
    resp = spe.post("alice", f"{WES}/runs", json={
        "workflow_url": "nf-wordcount@1.0.0", "workflow_type": "NFL",
        "workflow_type_version": "DSL2"})
    assert resp.status_code == 400
    assert "nextflow" in resp.json()["msg"] and "not installed" in resp.json()["msg"]
    assert spe.get("alice", f"{WES}/runs").json()["runs"] == []


def test_an_installed_engine_is_offered_with_its_options(spe: InProcess) -> None:
    spe.service.execution.engines["nextflow"] = StandInNextflow("24.10.0")  # type: ignore[assignment]
    info = spe.client.get(f"{WES}/service-info").json()
    assert info["workflow_type_versions"]["NFL"] == {"workflow_type_version": ["DSL2"]}
    assert info["workflow_engine_versions"]["nextflow"] == {
        "workflow_engine_version": ["24.10.0"]}
    assert "max_cpus" in {p["name"] for p in info["default_workflow_engine_parameters"]}
    refs = {w["ref"] for w in spe.get("alice", "/spe/v1/workflows").json()["workflows"]}
    assert "nf-wordcount@1.0.0" in refs


def test_service_info_carries_the_contact_settings(tmp_path: Path, catalog_dir: Path) -> None:
    for svc in in_process(tmp_path / "home", catalog_dir,
                          contact_url="mailto:spe@example.org",
                          documentation_url="https://spe.example.org/docs",
                          environment="test"):
        info = svc.client.get(f"{WES}/service-info").json()
        assert info["contactUrl"] == "mailto:spe@example.org"
        assert info["documentationUrl"] == "https://spe.example.org/docs"
        assert info["environment"] == "test"
