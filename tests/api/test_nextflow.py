"""The Nextflow workflow runs wherever `nextflow` is on PATH."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import Api, Server

pytestmark = pytest.mark.skipif(
    shutil.which("nextflow") is None,
    reason="nextflow is not on PATH (it cannot be installed offline: its launcher downloads "
           "a jar at first run); the argv and trace parser are covered by unit tests")


def test_nf_wordcount_runs_to_complete(server: Server, api: Api) -> None:
    resp = api.submit("nf-wordcount@1.0.0", {}, workflow_type="NFL",
                      workflow_type_version="DSL2")
    run_id = api.run_id(resp)
    assert api.wait(run_id, timeout=600) == "COMPLETE", server.log_tail()
    body = api.get(f"/ga4gh/wes/v1/runs/{run_id}").json()
    assert "results/counts.tsv" in body["outputs"]
