"""service-info, the workflows listing and submissions agree on which engines are installed
(issue 14), on a real server whose `nextflow` is a stand-in script named by
SPE_NEXTFLOW_BIN (the real one cannot be installed offline): present, Nextflow entries
are offered; absent, they are not, and a submission of one is 400 at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import WES, Server

STAND_IN = """#!/bin/sh
# stands in for nextflow: answers -version only
if [ "$1" = "-version" ]; then
  echo "      N E X T F L O W"
  echo "      version 24.10.0 build 5928"
  exit 0
fi
echo "stand-in nextflow: no runs here" >&2; exit 2
"""


def _server(home: Path, catalog: Path, nextflow: str) -> Server:
    return Server(home=home, catalog=catalog,
                  env_extra={"SPE_NEXTFLOW_BIN": nextflow}).start()


@pytest.fixture(scope="module")
def with_nextflow(tmp_path_factory: pytest.TempPathFactory,
                  catalog_dir: Path) -> Iterator[Server]:
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "nextflow"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    srv = _server(tmp_path_factory.mktemp("home-nf"), catalog_dir, str(script))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def without_nextflow(tmp_path_factory: pytest.TempPathFactory,
                     catalog_dir: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("home-no-nf")
    srv = _server(home, catalog_dir, str(home / "no-such-nextflow"))
    yield srv
    srv.stop()


def test_an_installed_nextflow_is_offered(with_nextflow: Server) -> None:
    api = with_nextflow.api("nina")
    info = api.get(f"{WES}/service-info").json()
    assert info["workflow_engine_versions"]["nextflow"] == {
        "workflow_engine_version": ["24.10.0"]}
    assert info["workflow_type_versions"]["NFL"] == {"workflow_type_version": ["DSL2"]}
    assert "max_cpus" in {p["name"] for p in info["default_workflow_engine_parameters"]}
    refs = {w["ref"] for w in api.get("/spe/v1/workflows").json()["workflows"]}
    assert "nf-wordcount@1.0.0" in refs
    assert int(info["tags"]["catalog_entries"]) == len(refs)


def test_an_absent_nextflow_is_not_offered_and_refused_at_once(
        without_nextflow: Server) -> None:
    api = without_nextflow.api("nina")
    info = api.get(f"{WES}/service-info").json()
    assert "nextflow" not in info["workflow_engine_versions"]
    assert "NFL" not in info["workflow_type_versions"]
    assert "max_cpus" not in {p["name"] for p in info["default_workflow_engine_parameters"]}
    refs = {w["ref"] for w in api.get("/spe/v1/workflows").json()["workflows"]}
    assert "nf-wordcount@1.0.0" not in refs and "tsv-summary@1.1.0" in refs
    assert int(info["tags"]["catalog_entries"]) == len(refs)
    resp = api.submit("nf-wordcount@1.0.0", {}, workflow_type="NFL",
                      workflow_type_version="DSL2")
    assert resp.status_code == 400
    assert "nextflow" in resp.json()["msg"] and "not installed" in resp.json()["msg"]
    assert api.get(f"{WES}/runs").json()["runs"] == []  # nothing was queued
