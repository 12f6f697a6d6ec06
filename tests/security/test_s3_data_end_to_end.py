"""An authorised run on S3-backed data: the input is downloaded from a real S3 server
(SeaweedFS) into the run, read-only and size-verified; the outputs are hashed into the
project's quarantine bucket with server-side encryption; another project is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, WES, Api, Server
from tests.s3_server import S3Server

COHORT = ROOT / "examples/datasets/demo-cohorts/cohort_a.tsv"


@pytest.fixture(scope="module")
def s3(s3_server: S3Server) -> S3Server:
    return s3_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
        s3: S3Server) -> Iterator[Server]:
    client = s3.client()
    for bucket in ("cohorts", "quarantine"):
        s3.make_bucket(bucket)
    client.put_object(Bucket="cohorts", Key="study-a/cohort.tsv", Body=COHORT.read_bytes())
    home = tmp_path_factory.mktemp("s3home")
    policy = yaml.safe_load((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    policy["projects"][0]["storage"] = {"quarantine": "s3://quarantine/proj-a"}
    policy["datasets"] = [{"id": "s3-cohort", "location": "s3://cohorts/study-a",
                           "projects": ["proj-a"]}]
    (home.parent / "s3-policy.yaml").write_text(yaml.safe_dump(policy))
    server = Server(home=home, catalog=catalog_dir, env_extra={
        "SPE_POLICY_FILE": str(home.parent / "s3-policy.yaml"),
        "SPE_S3_ENDPOINT_URL": s3.endpoint, "SPE_S3_ACCESS_KEY": s3.admin_keys.access_key,
        "SPE_S3_SECRET_KEY": s3.admin_keys.secret_key, "SPE_S3_SSE": "AES256"}).start()
    yield server
    server.stop()


def test_a_run_on_s3_data_completes_with_outputs_hashed_into_quarantine(
        srv: Server, s3: S3Server) -> None:
    api = Api(srv.url, srv.token("alice", groups=("spe:proj-a",)))
    run_id = api.run_id(api.submit("tsv-summary@1.1.0",
                                   {"input": "dataset://s3-cohort/cohort.tsv"}))
    assert api.wait(run_id, timeout=180) == "COMPLETE", srv.log_tail()
    staged = srv.home / "runs" / run_id / "inputs/s3-cohort/cohort.tsv"
    assert staged.read_bytes() == COHORT.read_bytes()
    assert staged.stat().st_mode & 0o222 == 0  # read-only
    outputs = api.get(f"{WES}/runs/{run_id}").json()["outputs"]
    head = s3.client().head_object(Bucket="quarantine",
                                   Key=f"proj-a/{run_id}/results/summary.csv")
    assert head["ServerSideEncryption"] == "AES256"
    body = s3.client().get_object(Bucket="quarantine",
                                  Key=f"proj-a/{run_id}/results/summary.csv")["Body"].read()
    assert outputs["results/summary.csv"]["checksum"] == \
        f"sha256:{hashlib.sha256(body).hexdigest()}"
    assert not (srv.home / "quarantine").exists() or not any(
        (srv.home / "quarantine").rglob("summary.csv"))


def test_the_s3_dataset_is_refused_to_another_project(srv: Server) -> None:
    api = Api(srv.url, srv.token("bob", groups=("spe:proj-b",)))
    resp = api.submit("tsv-summary@1.1.0", {"input": "dataset://s3-cohort/cohort.tsv"})
    assert resp.status_code == 403 and "s3-cohort" in resp.json()["msg"]


def test_a_missing_s3_object_is_refused_at_submission(srv: Server) -> None:
    api = Api(srv.url, srv.token("alice", groups=("spe:proj-a",)))
    resp = api.submit("tsv-summary@1.1.0", {"input": "dataset://s3-cohort/nope.tsv"})
    assert resp.status_code == 400
