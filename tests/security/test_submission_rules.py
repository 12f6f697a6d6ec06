"""One test per submission rule; each checks the GA4GH ErrorResponse and the rule named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.helpers import ROOT, WES, Api, Server
from tests.wes_schema import assert_valid_wes

BUNDLE = ROOT / "workflows/tsv-summary/1.0.0/bundle"


def _error(resp: requests.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status_code"] == status
    assert isinstance(body["msg"], str) and body["msg"]
    return str(body["msg"])


def _bundle_files() -> list[tuple[str, tuple[str, bytes]]]:
    return [("workflow_attachment", (p.relative_to(BUNDLE).as_posix(), p.read_bytes()))
            for p in sorted(BUNDLE.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


def test_unknown_workflow_url_is_refused_as_not_on_the_allowlist(api: Api) -> None:
    resp = api.submit("https://example.org/evil.smk", {})
    assert "allowlist" in _error(resp, 403)
    assert_valid_wes(resp)


@pytest.mark.parametrize("url", ["tsv-summary@9.9.9", "sha256:" + "0" * 64, "../tsv-summary",
                                 "Snakefile"])
def test_every_non_catalog_form_of_workflow_url_is_403(api: Api, url: str) -> None:
    assert "allowlist" in _error(api.submit(url, {}), 403)


@pytest.mark.parametrize(("url", "params"), [
    ("tsv-summary", {"input": "dataset://demo-cohorts/cohort_a.tsv"}),  # newest: 1.1.0
    ("tsv-summary@1.0.0", {})])
def test_catalog_references_by_id_and_version_are_accepted(api: Api, url: str,
                                                           params: dict[str, str]) -> None:
    api.run_id(api.submit(url, params))


def test_catalog_reference_by_bundle_digest_is_accepted(api: Api) -> None:
    digest = api.get("/spe/v1/workflows/tsv-summary@1.0.0").json()["bundle_digest"]
    api.run_id(api.submit(digest, {}))


def test_attachments_identical_to_an_approved_bundle_run_the_catalog_copy(
        server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("Snakefile", {}, files=_bundle_files()))
    assert api.wait(run_id) == "COMPLETE"
    body = api.get(f"{WES}/runs/{run_id}").json()
    snakefile = Path(body["run_log"]["cmd"][body["run_log"]["cmd"].index("--snakefile") + 1])
    assert snakefile == server.home / "runs" / run_id / "workflow" / "Snakefile"


def test_attachments_differing_by_one_byte_are_refused(api: Api) -> None:
    files = _bundle_files()
    name, (fname, content) = files[0]
    files[0] = (name, (fname, content + b"\n# one more line\n"))
    assert "not an approved bundle" in _error(api.submit("Snakefile", {}, files=files), 403)


def test_attachments_matching_but_naming_another_entry_are_refused(api: Api) -> None:
    resp = api.submit("gsea-rank@1.0.0", {}, files=_bundle_files())
    assert "does not name" in _error(resp, 403)


# In a quoted multipart filename a backslash escapes the next character, so two backslashes
# on the wire are one in the name the server sees.
@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a\\\\b.txt", "a\x00b",
                                  "dir/../../x", "./x", "a//b"])
def test_unsafe_attachment_names_are_400_and_nothing_is_written(
        server: Server, api: Api, name: str) -> None:
    before = set(server.home.parent.iterdir())
    files = [*_bundle_files(), ("workflow_attachment", (name, b"payload"))]
    assert "not safe" in _error(api.submit("Snakefile", {}, files=files), 400)
    assert set(server.home.parent.iterdir()) == before


def test_duplicate_attachment_names_are_400(api: Api) -> None:
    files = _bundle_files()
    files.append(files[0])
    assert "duplicate" in _error(api.submit("Snakefile", {}, files=files), 400)


def test_workflow_type_must_match_the_entry(api: Api) -> None:
    resp = api.submit("tsv-summary", {}, workflow_type="CWL")
    assert "workflow_type" in _error(resp, 400)


def test_workflow_type_version_must_match_the_entry(api: Api) -> None:
    resp = api.submit("tsv-summary", {}, workflow_type_version="7")
    assert "workflow_type_version" in _error(resp, 400)


def test_workflow_engine_must_match_the_entry(api: Api) -> None:
    resp = api.submit("tsv-summary", {}, workflow_engine="nextflow")
    assert "workflow_engine" in _error(resp, 400)


def test_workflow_engine_version_must_be_the_installed_one(api: Api) -> None:
    resp = api.submit("tsv-summary", {}, workflow_engine="snakemake",
                      workflow_engine_version="1.0")
    assert "workflow_engine_version" in _error(resp, 400)


def test_params_errors_list_every_json_pointer(api: Api) -> None:
    resp = api.submit("tsv-summary@1.0.0", {"input": "../../etc/passwd", "title": 5,
                                            "extra": 1})
    msg = _error(resp, 400)
    assert "/input" in msg and "/title" in msg
    assert "extra" in msg  # additionalProperties names it


def test_params_that_are_not_json_are_400(api: Api) -> None:
    resp = api.submit("tsv-summary", None, workflow_params="{not json")
    assert "workflow_params is not valid JSON" in _error(resp, 400)


@pytest.mark.parametrize(("options", "needle"), [
    ({"shell_exec": "rm -rf /"}, "not an allowed option"),
    ({"cores": "64"}, "<= 4"),
    ({"cores": "0"}, ">= 1"),
    ({"cores": "two"}, "integer"),
    ({"keep_going": "maybe"}, "true or false"),
    ({"cores": "1; rm -rf /"}, "integer"),
])
def test_engine_parameters_are_a_closed_typed_bounded_list(
        api: Api, options: dict[str, str], needle: str) -> None:
    resp = api.submit("tsv-summary@1.0.0", {}, workflow_engine_parameters=options)
    assert needle in _error(resp, 400)


def test_allowed_engine_parameters_reach_the_engine_typed(api: Api) -> None:
    run_id = api.run_id(api.submit("tsv-summary@1.0.0", {},
                                   workflow_engine_parameters={"cores": "2"}))
    api.wait(run_id)
    cmd = api.get(f"{WES}/runs/{run_id}").json()["run_log"]["cmd"]
    assert cmd[cmd.index("--cores") + 1] == "2"


def test_missing_required_fields_are_400(api: Api) -> None:
    resp = api.post(f"{WES}/runs", files=[("workflow_url", (None, "tsv-summary"))])
    assert resp.status_code == 400


def test_tags_must_be_a_string_map(api: Api) -> None:
    resp = api.submit("tsv-summary", {}, tags=json.dumps({"a": {"nested": 1}}))
    assert "tags" in _error(resp, 400)


def test_a_request_over_the_size_limit_is_413(tmp_path: Path, catalog_dir: Path) -> None:
    server = Server(home=tmp_path / "home", catalog=catalog_dir,
                    env_extra={"SPE_MAX_REQUEST_BYTES": "100000",
                               "SPE_MAX_ATTACHMENT_BYTES": "5000",
                               "SPE_MAX_ATTACHMENTS": "3"}).start()
    try:
        api = server.api("big")
        big = [("workflow_attachment", ("Snakefile", b"x" * 200_000))]
        _error(api.submit("Snakefile", {}, files=big), 413)
        one_large = [("workflow_attachment", ("Snakefile", b"x" * 20_000))]
        assert "larger than 5000" in _error(api.submit("Snakefile", {}, files=one_large), 413)
        many = [("workflow_attachment", (f"f{i}.txt", b"x")) for i in range(4)]
        assert "at most 3 attachments" in _error(api.submit("Snakefile", {}, files=many), 413)
    finally:
        server.stop()


def test_an_oversized_form_field_is_413_not_500(api: Api) -> None:
    resp = api.submit("tsv-summary", None, workflow_params=json.dumps({"x": "y" * 1_200_000}))
    assert resp.status_code == 413, resp.text


def test_engine_parameters_must_be_a_flat_map(api: Api) -> None:
    resp = api.submit("tsv-summary", {}, workflow_engine_parameters=json.dumps(
        {"cores": {"nested": "1"}}))
    assert "workflow_engine_parameters" in _error(resp, 400)


def test_submissions_and_refusals_are_audited_in_the_store(server: Server, user: str) -> None:
    api = server.api(user)
    run_id = api.run_id(api.submit("sleepy", {"seconds": 30}))
    api.submit("not-in-the-catalog", {})
    api.wait(run_id, {"RUNNING"})
    assert api.post(f"{WES}/runs/{run_id}/cancel").status_code == 200
    api.wait(run_id)
    engine = create_engine(f"sqlite:///{server.home / 'spe.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT action, outcome, target FROM audit_events WHERE actor = :a ORDER BY id"),
            {"a": f"dev|{user}"}).all()
    assert ("run.submit", "accepted", run_id) in rows
    assert ("run.submit", "denied", "") in rows
    assert ("run.cancel", "canceling", run_id) in rows
