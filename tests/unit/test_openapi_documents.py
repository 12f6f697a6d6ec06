"""Our OpenAPI documents are valid and keep every path, operationId and schema field of
the official GA4GH WES 1.1.0 document (ours may add, never drop). The official document is
found through ``SPE_GA4GH_SPECS`` (``tests/ga4gh_specs.py``); the tests that compare with
it are skipped, with that reason, without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from tests.ga4gh_specs import WES_DOCUMENT, require

ROOT = Path(__file__).resolve().parents[2]
OURS = ROOT / "spe" / "openapi"  # shipped in the wheel as package data
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WES_OPERATIONS = {
    "GetServiceInfo", "ListRuns", "RunWorkflow", "GetRunLog",
    "GetRunStatus", "ListTasks", "GetTask", "CancelRun",
}


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def wes() -> dict[str, Any]:
    return _load(OURS / "wes.yaml")


@pytest.fixture(scope="module")
def spe() -> dict[str, Any]:
    return _load(OURS / "spe.yaml")


@pytest.fixture(scope="module")
def official_path() -> Path:
    return require(WES_DOCUMENT)


@pytest.fixture(scope="module")
def official(official_path: Path) -> dict[str, Any]:
    return _load(official_path)


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(ref: str, doc: dict[str, Any], base: Path) -> tuple[Any, dict[str, Any], Path]:
    """Follow a ``$ref`` (local, or relative to ``base`` for the official document)."""
    location, _, pointer = ref.partition("#")
    if location:
        base = (base / location).resolve()
        doc = _load(base)
        base = base.parent
    node: Any = doc
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, doc, base


def _deref(node: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """The node itself, or the local object its ``$ref`` points to."""
    return _resolve(node["$ref"], doc, OURS)[0] if "$ref" in node else node


def _property_names(schema: dict[str, Any], doc: dict[str, Any], base: Path) -> set[str]:
    """Property names of a schema, following ``$ref`` and ``allOf``."""
    if "$ref" in schema:
        target, doc, base = _resolve(schema["$ref"], doc, base)
        return _property_names(target, doc, base)
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= _property_names(part, doc, base)
    return names


@pytest.mark.parametrize("name", ["wes.yaml", "spe.yaml"])
def test_document_is_valid_openapi_3_0(name: str) -> None:
    doc = _load(OURS / name)
    assert doc["openapi"] == "3.0.3"
    validate(doc)


@pytest.mark.parametrize("name", ["wes.yaml", "spe.yaml"])
def test_document_is_self_contained(name: str) -> None:
    doc = _load(OURS / name)
    external = [r for r in _refs(doc) if not r.startswith("#/")]
    assert external == []


@pytest.mark.parametrize(("name", "base"), [("wes.yaml", "/ga4gh/wes/v1"), ("spe.yaml", "/spe/v1")])
def test_servers_and_security(name: str, base: str) -> None:
    doc = _load(OURS / name)
    assert doc["servers"] == [{"url": base}]
    assert doc["security"] == [{"bearerAuth": []}]
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "x-bearerInfoFunc" not in scheme


def test_every_official_operation_is_kept(wes: dict[str, Any], official: dict[str, Any]) -> None:
    ours = _operations(wes)
    theirs = _operations(official)
    assert {op["operationId"] for op in theirs.values()} == WES_OPERATIONS
    for key, op in theirs.items():
        assert key in ours, f"{key} is missing"
        assert ours[key]["operationId"] == op["operationId"], key


def test_every_official_schema_keeps_its_fields(
    wes: dict[str, Any], official: dict[str, Any], official_path: Path
) -> None:
    ours = wes["components"]["schemas"]
    for name, schema in official["components"]["schemas"].items():
        assert name in ours, f"schema {name} is missing"
        theirs = _property_names(schema, official, official_path.parent)
        mine = _property_names(ours[name], wes, OURS)
        assert theirs <= mine, f"{name} drops {sorted(theirs - mine)}"


PUBLIC = {("wes", "/service-info", "get"), ("spe", "/auth-instructions", "get")}


def test_only_service_info_and_auth_instructions_are_public(
    wes: dict[str, Any], spe: dict[str, Any]
) -> None:
    for doc, ops in (("wes", _operations(wes)), ("spe", _operations(spe))):
        for (path, method), op in ops.items():
            if (doc, path, method) in PUBLIC:
                assert op["security"] == []
            else:
                assert "security" not in op, (doc, path, method)


@pytest.mark.parametrize("name", ["wes.yaml", "spe.yaml"])
def test_every_error_response_is_an_error_response(name: str) -> None:
    doc = _load(OURS / name)
    for key, op in _operations(doc).items():
        codes = {str(c) for c in op["responses"]}
        public = op.get("security") == []
        assert ({"500"} if public else {"401", "500"}) <= codes, key
        for code, response in op["responses"].items():
            if int(code) < 400:
                continue
            schema = _deref(response, doc)["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (key, code)
    assert set(doc["components"]["schemas"]["ErrorResponse"]["properties"]) == {
        "msg", "status_code",
    }


def test_list_runs_extensions(wes: dict[str, Any]) -> None:
    resolved = [_deref(p, wes) for p in wes["paths"]["/runs"]["get"]["parameters"]]
    params = {p["name"]: p for p in resolved}
    assert params["page_size"]["schema"]["minimum"] == 1
    assert params["page_size"]["schema"]["maximum"] == 1000
    assert params["page_size"]["schema"]["default"] == 50
    assert params["page_token"]["schema"]["maxLength"] == 1024
    for name in ("state", "tag"):
        p = params[name]
        assert p["x-spe-extension"] is True
        assert (p["in"], p["style"], p["explode"]) == ("query", "form", True)
        assert p["schema"]["type"] == "array"
    assert params["state"]["schema"]["items"] == {"$ref": "#/components/schemas/State"}
    assert params["tag"]["schema"]["items"]["pattern"] == "^[^:]{1,128}:.{0,128}$"


def test_run_workflow_form(wes: dict[str, Any]) -> None:
    op = wes["paths"]["/runs"]["post"]
    schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(schema["required"]) == {"workflow_type", "workflow_type_version", "workflow_url"}
    attachment = schema["properties"].pop("workflow_attachment")
    assert attachment["items"] == {"type": "string", "format": "binary"}
    for name, prop in schema["properties"].items():
        assert prop["type"] == "string", name
        assert 0 < prop["maxLength"] <= 1048576, name
    assert {"200", "400", "401", "403", "413", "500", "503"} <= {str(c) for c in op["responses"]}


def test_run_workflow_also_takes_json_and_urlencoded_bodies(wes: dict[str, Any]) -> None:
    """An extension for generic clients (docs/wes-compatibility.md): multipart stays first,
    the content type connexion uses to parse forms."""
    content = wes["paths"]["/runs"]["post"]["requestBody"]["content"]
    assert list(content) == ["multipart/form-data", "application/json",
                             "application/x-www-form-urlencoded"]
    form = content["application/x-www-form-urlencoded"]["schema"]
    assert "workflow_attachment" not in form["properties"]
    assert set(form["required"]) == {"workflow_type", "workflow_type_version", "workflow_url"}


def test_spe_operation_ids_are_python_names(spe: dict[str, Any]) -> None:
    ids = {op["operationId"] for op in _operations(spe).values()}
    assert ids == {"list_workflows", "get_workflow", "get_run_log_stream", "list_run_outputs",
                   "get_me", "get_auth_instructions", "purge_run", "list_datasets",
                   "list_audit_events", "list_release_requests", "create_release_request",
                   "get_release_request", "vote_on_release_request",
                   "resubmit_release_request", "withdraw_release_request",
                   "revoke_release_request", "preview_release_file",
                   "download_released_file", "get_release_crate", "get_release_context",
                   "get_run_progress"}
    assert all(i.isidentifier() and i == i.lower() for i in ids)


@pytest.fixture(scope="module")
def connexion_client() -> Any:
    """Both documents mounted with a dummy handler per operation. Connexion's own security
    middleware is left out: authentication is our code's job (without ``x-bearerInfoFunc``
    connexion 3 would answer 401 to every secured operation)."""
    from connexion import FlaskApp
    from connexion.middleware.main import ConnexionMiddleware
    from connexion.middleware.security import SecurityMiddleware
    from connexion.resolver import Resolver

    calls: dict[str, dict[str, Any]] = {}

    def function_resolver(operation_id: str) -> Any:
        def handler(**kwargs: Any) -> dict[str, Any]:
            calls[operation_id] = kwargs
            return {}
        return handler

    middlewares = [
        m for m in ConnexionMiddleware.default_middlewares if m is not SecurityMiddleware
    ]
    app = FlaskApp(__name__, middlewares=middlewares)
    resolver = Resolver(function_resolver=function_resolver)
    app.add_api(OURS / "wes.yaml", resolver=resolver)
    app.add_api(OURS / "spe.yaml", resolver=resolver)
    client = app.test_client()
    client.calls = calls
    return client


def test_connexion_routes_both_documents(connexion_client: Any) -> None:
    assert connexion_client.get("/ga4gh/wes/v1/service-info").status_code == 200
    assert connexion_client.get("/spe/v1/workflows").status_code == 200
    assert connexion_client.get("/spe/v1/runs/abc/outputs").status_code == 200
    assert connexion_client.calls["list_run_outputs"] == {"run_id": "abc"}
    # over-long ids are refused by validation; unknown ids reach the handler (-> 404 there)
    assert connexion_client.get("/ga4gh/wes/v1/runs/" + "a" * 65).status_code == 400
    assert connexion_client.get("/ga4gh/wes/v1/runs/unknown").status_code == 200


def test_connexion_parses_repeated_query_arrays(connexion_client: Any) -> None:
    r = connexion_client.get(
        "/ga4gh/wes/v1/runs?state=RUNNING&state=QUEUED&tag=project:alpha&tag=owner:x:y"
    )
    assert r.status_code == 200
    kwargs = connexion_client.calls["ListRuns"]
    assert kwargs["state"] == ["RUNNING", "QUEUED"]
    assert kwargs["tag"] == ["project:alpha", "owner:x:y"]
    assert kwargs["page_size"] == 50
    assert connexion_client.get("/ga4gh/wes/v1/runs?state=BOGUS").status_code == 400
    assert connexion_client.get("/ga4gh/wes/v1/runs?tag=nocolon").status_code == 400
    assert connexion_client.get("/ga4gh/wes/v1/runs?page_size=1001").status_code == 400


def test_connexion_parses_the_multipart_run_request(connexion_client: Any) -> None:
    fields = {"workflow_type": "SMK", "workflow_type_version": "8", "workflow_url": "x@1",
              "workflow_params": '{"a": "1,2"}'}
    parts = [(k, (None, v)) for k, v in fields.items()]
    parts += [("workflow_attachment", (name, b"data", "text/plain")) for name in ("a.txt", "b.txt")]
    r = connexion_client.post("/ga4gh/wes/v1/runs", files=parts)
    assert r.status_code == 200, r.text
    kwargs = connexion_client.calls["RunWorkflow"]
    assert kwargs["body"] == fields
    assert [f.filename for f in kwargs["workflow_attachment"]] == ["a.txt", "b.txt"]
    missing = [p for p in parts if p[0] != "workflow_url"]
    assert connexion_client.post("/ga4gh/wes/v1/runs", files=missing).status_code == 400
