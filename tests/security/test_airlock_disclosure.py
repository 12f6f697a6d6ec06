"""The airlock's checks against a real server and a real run whose outputs hold a small
count: the requester never learns a value from the data through the findings, and the
count in the JSON output is found like the one in the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, Api, Server

GROUPS = {"alice": ("spe:proj-a",),
          "rita": ("spe:proj-a", "spe:proj-a:role=reviewer")}
RR = "/spe/v1/release-requests"
HEADER = "sample_id\tsite\tsex\tsmoking\tage\tbmi\tsbp\tcrp\n"


def _cohort() -> str:
    """Twelve people in Glasgow and three in Oban: Oban's count (3) is small."""
    rows = [f"CA{i:04d}\tGlasgow\tF\tnever\t50\t{20 + i}.5\t120\t1.0\n" for i in range(12)]
    rows += [f"CB{i:04d}\tOban\tM\tnever\t60\t{30 + i}.25\t130\t2.0\n" for i in range(3)]
    return HEADER + "".join(rows)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("disclosure")
    (root / "data").mkdir()
    (root / "data/cohort.tsv").write_text(_cohort())
    policy = yaml.safe_load((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    policy["datasets"] = [{"id": "small", "location": str(root / "data"),
                           "projects": ["proj-a"]}]
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    server = Server(home=root / "home", catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(root / "policy.yaml")}).start()
    yield server
    server.stop()


def as_user(srv: Server, name: str) -> Api:
    return Api(srv.url, srv.token(name, groups=GROUPS[name]))


@pytest.fixture(scope="module")
def request_id(srv: Server) -> str:
    alice = as_user(srv, "alice")
    run_id = alice.run_id(alice.submit("tsv-summary@1.1.0", {
        "input": "dataset://small/cohort.tsv", "group_column": "site",
        "value_column": "bmi"}))
    assert alice.wait(run_id, timeout=180) == "COMPLETE"
    resp = alice.post(RR, json={"run_id": run_id,
                                "files": ["results/summary.csv", "results/qc.json",
                                          "results/summary.png"],
                                "justification": "Group summaries for the paper."})
    assert resp.status_code == 201, resp.text
    assert resp.json()["state"] == "IN_REVIEW", resp.json()
    return str(resp.json()["id"])


def small_counts(body: dict[str, Any], path: str) -> list[dict[str, Any]]:
    return [f for f in body["findings"]
            if f["check"] == "small_counts" and f["path"] == path and f["severity"] != "pass"]


def test_small_count_findings_show_the_requester_no_values(srv: Server,
                                                           request_id: str) -> None:
    mine = as_user(srv, "alice").get(f"{RR}/{request_id}").json()
    listed = as_user(srv, "alice").get(RR, params={"role": "requester"}).json()["requests"]
    for body in (mine, *[r for r in listed if r["id"] == request_id]):
        [flagged] = small_counts(body, "results/summary.csv")
        cells = flagged["details"]["cells"]
        assert ["row 3", "col n"] in cells, cells  # where: Oban's row, the n column
        assert all(3 not in cell and "3" not in cell for cell in cells), cells
        assert all(len(cell) == 2 for cell in cells), cells
    reviewer = as_user(srv, "rita").get(f"{RR}/{request_id}").json()
    [seen] = small_counts(reviewer, "results/summary.csv")
    assert ["row 3", "col n", 3] in seen["details"]["cells"]


def test_small_count_in_json_output_is_found(srv: Server, request_id: str) -> None:
    reviewer = as_user(srv, "rita").get(f"{RR}/{request_id}").json()
    flagged = small_counts(reviewer, "results/qc.json")
    assert flagged, reviewer["findings"]
    cells = [cell for f in flagged for cell in f["details"]["cells"]]
    assert ["/groups/Oban", 3] in cells, cells
    mine = as_user(srv, "alice").get(f"{RR}/{request_id}").json()
    assert ["/groups/Oban"] in [c for f in small_counts(mine, "results/qc.json")
                                for c in f["details"]["cells"]]


def test_the_shipped_plot_passes_and_its_preview_shows_true_type_and_size(
        srv: Server, request_id: str) -> None:
    """The request reached IN_REVIEW with the workflow's PNG (no text chunk, nothing
    after IEND); reviewers see the sniffed type and the whole size with the preview."""
    rita = as_user(srv, "rita")
    body = rita.get(f"{RR}/{request_id}").json()
    [plot] = [f for f in body["files"] if f["path"] == "results/summary.png"]
    resp = rita.get(f"{RR}/{request_id}/preview", params={"path": "results/summary.png"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-SPE-Sniffed-Type"] == "png"
    assert int(resp.headers["X-SPE-File-Size"]) == plot["size"] == len(resp.content)
