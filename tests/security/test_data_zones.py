"""Data zones on the shared filesystem: runs read only the datasets their owner may, inputs
arrive read-only, outputs land hashed in the project's quarantine, and a run's data can be
purged by its owner."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import ROOT, WES, Api, Server

COHORT = ROOT / "examples/datasets/demo-cohorts/cohort_a.tsv"
GROUPS = {"alice": ("spe:proj-a",), "bob": ("spe:proj-b",), "olga": ("spe:operators",),
          "both": ("spe:proj-a", "spe:proj-b")}


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zone")
    for name in ("cohort-a", "cohort-b"):
        (root / "datasets" / name).mkdir(parents=True)
        (root / "datasets" / name / "cohort.tsv").write_bytes(COHORT.read_bytes())
    (root / "outside.tsv").write_bytes(COHORT.read_bytes())
    (root / "datasets/cohort-a/escape.tsv").symlink_to(root / "outside.tsv")
    policy = yaml.safe_load((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    policy["datasets"] = [
        {"id": "cohort-a", "location": str(root / "datasets/cohort-a"),
         "projects": ["proj-a"]},
        {"id": "cohort-b", "location": str(root / "datasets/cohort-b"),
         "projects": ["proj-b"]},
    ]
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    return root


@pytest.fixture(scope="module")
def srv(zone: Path, catalog_dir: Path) -> Iterator[Server]:
    server = Server(home=zone / "home", catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(zone / "policy.yaml")}).start()
    yield server
    server.stop()


def as_user(srv: Server, name: str) -> Api:
    return Api(srv.url, srv.token(name, groups=GROUPS[name]))


def submit(api: Api, ref: str) -> tuple[int, dict]:
    resp = api.submit("tsv-summary@1.1.0", {"input": ref})
    return resp.status_code, resp.json()


def test_a_dataset_of_another_project_is_refused_before_anything_runs(
        srv: Server) -> None:
    runs_before = set((srv.home / "runs").glob("*")) if (srv.home / "runs").exists() else set()
    status, body = submit(as_user(srv, "alice"), "dataset://cohort-b/cohort.tsv")
    assert status == 403 and "cohort-b" in body["msg"]
    runs_after = set((srv.home / "runs").glob("*")) if (srv.home / "runs").exists() else set()
    assert runs_after == runs_before
    with sqlite3.connect(srv.home / "spe.db") as db:
        denied = db.execute("SELECT target FROM audit_events WHERE action = 'data.denied'"
                            ).fetchall()
    assert ("cohort-b",) in denied


@pytest.mark.parametrize("ref", ["dataset://cohort-a/../cohort-b/cohort.tsv",
                                 "dataset://cohort-a/escape.tsv",
                                 "dataset://cohort-a/missing.tsv", "/etc/passwd"])
def test_traversal_symlink_escapes_and_outside_paths_are_refused(srv: Server,
                                                                 ref: str) -> None:
    status, body = submit(as_user(srv, "alice"), ref)
    assert status in (400, 403), body


def test_an_authorised_run_reads_its_input_read_only_and_quarantines_hashed_outputs(
        srv: Server, zone: Path) -> None:
    api = as_user(srv, "alice")
    run_id = api.run_id(api.submit("tsv-summary@1.1.0",
                                   {"input": str(zone / "datasets/cohort-a/cohort.tsv")}))
    assert api.wait(run_id) == "COMPLETE", srv.log_tail()
    staged = srv.home / "runs" / run_id / "inputs/cohort-a/cohort.tsv"
    assert staged.is_symlink() and staged.resolve() == zone / "datasets/cohort-a/cohort.tsv"
    outputs = api.get(f"{WES}/runs/{run_id}").json()["outputs"]
    quarantined = srv.home / "quarantine/proj-a" / run_id / "results/summary.csv"
    assert quarantined.is_file()
    digest = hashlib.sha256(quarantined.read_bytes()).hexdigest()
    assert outputs["results/summary.csv"]["checksum"] == f"sha256:{digest}"


def test_datasets_listing_shows_what_the_caller_may_use(srv: Server) -> None:
    def ids(user: str) -> list[str]:
        return [d["id"] for d in as_user(srv, user).get("/spe/v1/datasets").json()["datasets"]]

    assert ids("alice") == ["cohort-a"]
    assert ids("bob") == ["cohort-b"]
    assert ids("olga") == []


def test_purge_removes_work_and_quarantine_and_is_audited(srv: Server) -> None:
    alice = as_user(srv, "alice")
    run_id = alice.run_id(alice.submit("tsv-summary@1.1.0",
                                       {"input": "dataset://cohort-a/cohort.tsv"}))
    alice.wait(run_id)
    denied = requests.delete(f"{srv.url}/spe/v1/runs/{run_id}", timeout=30,
                             headers={"Authorization": f"Bearer {as_user(srv, 'bob').token}"})
    assert denied.status_code == 404
    resp = requests.delete(f"{srv.url}/spe/v1/runs/{run_id}", timeout=30,
                           headers={"Authorization": f"Bearer {alice.token}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["work_dir_removed"] == 1
    assert resp.json()["quarantined_files_removed"] >= 3
    assert not (srv.home / "runs" / run_id).exists()
    assert not list((srv.home / "quarantine/proj-a" / run_id).rglob("*.csv"))
    body = alice.get(f"{WES}/runs/{run_id}").json()
    assert body["state"] == "COMPLETE" and any("purged" in line
                                               for line in body["run_log"]["system_logs"])
    with sqlite3.connect(srv.home / "spe.db") as db:
        assert db.execute("SELECT count(*) FROM audit_events WHERE action = 'run.purge' "
                          "AND target = ?", (run_id,)).fetchone()[0] == 1


def test_a_running_run_cannot_be_purged(srv: Server) -> None:
    alice = as_user(srv, "alice")
    run_id = alice.run_id(alice.submit("sleepy", {"seconds": 60}))
    alice.wait(run_id, {"RUNNING"})
    resp = requests.delete(f"{srv.url}/spe/v1/runs/{run_id}", timeout=30,
                           headers={"Authorization": f"Bearer {alice.token}"})
    assert resp.status_code == 409
    alice.post(f"{WES}/runs/{run_id}/cancel")


def test_a_member_of_two_projects_cannot_carry_data_across_them(srv: Server) -> None:
    both = as_user(srv, "both")
    resp = both.submit("tsv-summary@1.1.0", {"input": "dataset://cohort-a/cohort.tsv"},
                       tags={"project": "proj-b"})
    assert resp.status_code == 403 and "cohort-a" in resp.json()["msg"]
    ok = both.submit("tsv-summary@1.1.0", {"input": "dataset://cohort-a/cohort.tsv"},
                     tags={"project": "proj-a"})
    assert ok.status_code == 200


def test_unknown_and_forbidden_datasets_get_the_same_answer(srv: Server) -> None:
    status_unknown, body_unknown = submit(as_user(srv, "alice"), "dataset://nope/x.tsv")
    status_other, _ = submit(as_user(srv, "alice"), "dataset://cohort-b/cohort.tsv")
    assert status_unknown == status_other == 403
    assert "nope" in body_unknown["msg"]
