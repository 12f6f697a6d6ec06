"""The reviewer's view of what produced a release request's files
(``GET /spe/v1/release-requests/{id}/context``, issue 14): the project's reviewers only,
never the requester; audited; the run's workflow, parameters, dataset references,
findings with values and each file's true type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spe.domain.catalog import WorkflowEntry
from spe.domain.ports import JSON, LOCAL, EngineTarget
from tests.fakes import ResultsEngine
from tests.helpers import WES
from tests.inprocess.harness import InProcess

RR = "/spe/v1/release-requests"
CSV = "site,n,mean_bmi\nA,120,26.1\nB,3,31.0\n"


class TsvSummaryStandIn(ResultsEngine):
    """Leaves tsv-summary's declared outputs: a CSV whose cell ``3`` is a small count
    (a finding with a value) and a 'PNG' whose bytes are text (its true type)."""

    def argv(self, entry: WorkflowEntry, bundle_dir: Path, params_file: Path,
             workdir: Path, options: JSON, *, target: EngineTarget = LOCAL) -> list[str]:
        results = self.output_dir(workdir) / "results"
        results.mkdir(parents=True, exist_ok=True)
        (results / "summary.csv").write_text(CSV)
        (results / "summary.png").write_text("not a picture at all\n")
        (results / "qc.json").write_text('{"rows": 123}\n')
        return ["true"]


def _request(spe: InProcess) -> dict[str, Any]:
    spe.service.execution.engines["snakemake"] = TsvSummaryStandIn()
    run_id = spe.run_id(spe.submit("alice", "tsv-summary@1.1.0",
                                   {"input": "dataset://demo-cohorts/cohort_a.tsv"}))
    assert spe.wait("alice", run_id) == "COMPLETE"
    resp = spe.post("alice", RR, json={
        "run_id": run_id, "files": ["results/summary.csv", "results/summary.png"],
        "justification": "Site means for the paper's table 2."})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_a_reviewer_sees_what_produced_the_files(spe: InProcess) -> None:
    req = _request(spe)
    assert spe.get("rita", f"{WES}/runs/{req['run_id']}").status_code == 404  # not theirs
    resp = spe.get("rita", f"{RR}/{req['id']}/context")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    run = body["run"]
    assert (run["workflow_id"], run["workflow_version"]) == ("tsv-summary", "1.1.0")
    assert run["bundle_digest"].startswith("sha256:")
    assert run["workflow_params"]["input"] == "dataset://demo-cohorts/cohort_a.tsv"
    assert run["datasets"] == [{"pointer": "/input", "dataset": "demo-cohorts",
                                "path": "cohort_a.tsv",
                                "reference": "dataset://demo-cohorts/cohort_a.tsv"}]
    assert run["engine"] == "snakemake" and run["state"] == "COMPLETE"
    assert body["justification"] == "Site means for the paper's table 2."
    assert body["requester"] == "alice"
    types = {f["path"]: (f["type"], f["size"]) for f in body["files"]}
    assert types["results/summary.csv"] == ("text", len(CSV))
    assert types["results/summary.png"][0] == "text"  # its name says png, its bytes do not


def test_the_findings_in_the_context_carry_values_for_reviewers_only(spe: InProcess) -> None:
    req = _request(spe)
    body = spe.get("rita", f"{RR}/{req['id']}/context").json()
    counts = next(f for f in body["findings"] if f["check"] == "small_counts")
    assert counts["details"]["cells"] == [["row 3", "col n", 3]]  # the value itself
    mine = spe.get("alice", f"{RR}/{req['id']}").json()["findings"]
    own_counts = next(f for f in mine if f["check"] == "small_counts")
    assert own_counts["details"]["cells"] == [["row 3", "col n"]]  # where, not what
    assert len(mine) == len(body["findings"])


def test_the_requester_and_others_may_not_read_the_context(spe: InProcess) -> None:
    req = _request(spe)
    own = spe.get("alice", f"{RR}/{req['id']}/context")
    assert own.status_code == 403
    assert spe.get("bob", f"{RR}/{req['id']}/context").status_code == 404
    assert spe.get("olga", f"{RR}/{req['id']}/context").status_code == 403  # operator
    assert spe.get("rita", f"{RR}/nope/context").status_code == 404


def test_reading_the_context_is_audited(spe: InProcess) -> None:
    req = _request(spe)
    spe.get("rita", f"{RR}/{req['id']}/context")
    events = spe.get("olga", "/spe/v1/audit", params={"action": "release.context"}).json()
    assert [(e["actor"], e["target"], e["outcome"]) for e in events["events"]] == [
        ("dev|rita", req["id"], "granted")]
