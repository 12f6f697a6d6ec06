"""Generic GA4GH WES clients from PyPI against a real server (issue 14): Galaxy's
``gxy-wes`` posts ``POST /runs`` as an urlencoded form, ``ai4gh`` as a JSON
``RunRequest`` with object-valued fields; both get a run that completes, and ai4gh's
WES 1.1 models accept our answers."""

from __future__ import annotations

import asyncio

from ai4gh.core.auth import BearerTokenAuth
from ai4gh.specs.wes.client import WESClient
from gxy_wes.client import WesClient, WesError

from tests.helpers import Api, Server


def test_galaxys_wes_client_submits_as_a_form_and_follows_the_run(
        server: Server, api: Api, user: str) -> None:
    client = WesClient(server.url, timeout=30)
    client.session.headers["Authorization"] = f"Bearer {server.token(user)}"
    assert "SMK" in client.service_info()["workflow_type_versions"]
    run_id = client.submit_run(workflow_type="SMK", workflow_type_version="9",
                               workflow_url="sleepy", params={"seconds": 0})["run_id"]
    assert api.wait(run_id) == "COMPLETE"
    run = client.get_run(run_id)
    assert run["request"]["workflow_params"]["seconds"] == 0
    assert run_id in {r["run_id"] for r in client.list_runs(page_size=100)["runs"]}
    assert client.get_run_tasks(run_id)["task_logs"] is not None


def test_galaxys_wes_client_meets_the_allowlist(server: Server, user: str) -> None:
    client = WesClient(server.url, timeout=30)
    client.session.headers["Authorization"] = f"Bearer {server.token(user)}"
    try:
        client.submit_run(workflow_type="SMK", workflow_type_version="9",
                          workflow_url="https://example.org/any.smk")
    except WesError as exc:
        assert exc.status_code == 403
    else:
        raise AssertionError("a workflow off the allowlist was accepted")


def test_ai4gh_submits_json_and_reads_the_run_with_its_models(
        server: Server, api: Api, user: str) -> None:
    async def scenario() -> tuple[str, str]:
        client = WESClient(server.url, auth=BearerTokenAuth(server.token(user)))
        try:
            info = await client.get_service_info()
            assert info.id == "org.denbi.spe.wes"
            run = await client.submit_run(workflow_url="sleepy", workflow_type="SMK",
                                          workflow_type_version="9",
                                          workflow_params={"seconds": 0},
                                          tags={"client": "ai4gh"})
            run_id = run.run_id
            await asyncio.to_thread(api.wait, run_id)
            described = await client.get_run(run_id)
            return run_id, str(described.state.value if hasattr(described.state, "value")
                               else described.state)
        finally:
            await client.close()

    run_id, state = asyncio.run(scenario())
    assert state == "COMPLETE"
    tags = api.get(f"/ga4gh/wes/v1/runs/{run_id}").json()["request"]["tags"]
    assert tags["client"] == "ai4gh"
