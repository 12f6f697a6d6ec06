"""A real server running real Snakemake workflows, driven over HTTP; every WES response is
validated against the official GA4GH WES 1.1 document."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from tests.helpers import WES, Api, Server
from tests.wes_schema import assert_valid_wes


def _get(api: Api, path: str, status: int = 200) -> dict:
    resp = api.get(path)
    assert resp.status_code == status, resp.text
    assert_valid_wes(resp)
    return resp.json()


def test_service_info_reports_installed_engine_and_catalog_types(server: Server) -> None:
    body = _get(server.api(), f"{WES}/service-info")
    assert body["workflow_type_versions"]["SMK"]["workflow_type_version"] == ["9"]
    assert body["workflow_engine_versions"]["snakemake"]["workflow_engine_version"][0][0] == "9"
    assert body["supported_wes_versions"] == ["1.1.0"]
    names = {p["name"] for p in body["default_workflow_engine_parameters"]}
    assert {"cores", "keep_going"} <= names
    nextflow = shutil.which("nextflow") is not None
    assert ("NFL" in body["workflow_type_versions"]) == nextflow
    assert ("max_cpus" in names) == nextflow  # an engine option of Nextflow entries only
    assert body["auth_instructions_url"]


def test_service_info_counts_only_the_callers_runs(server: Server, api: Api) -> None:
    api.wait(api.run_id(api.submit("sleepy", {"seconds": 0})))
    mine = _get(api, f"{WES}/service-info")["system_state_counts"]
    other = _get(server.api("stranger-counts"), f"{WES}/service-info")["system_state_counts"]
    assert mine["COMPLETE"] == 1
    assert sum(other.values()) == 0


def test_tsv_summary_runs_to_complete_with_hashed_outputs_and_task_logs(
        server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("tsv-summary@1.0.0", None))
    assert api.wait(run_id) == "COMPLETE", server.log_tail()
    body = _get(api, f"{WES}/runs/{run_id}")
    assert body["state"] == "COMPLETE"
    assert body["run_log"]["exit_code"] == 0
    assert body["request"]["workflow_engine"] == "snakemake"  # defaulted from the type
    outputs = body["outputs"]
    assert {"results/summary.csv", "results/summary.png"} <= set(outputs)
    csv = server.home / "runs" / run_id / "work" / "results/summary.csv"
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    assert outputs["results/summary.csv"] == {"class": "File", "size": csv.stat().st_size,
                                              "checksum": f"sha256:{digest}"}
    tasks = _get(api, f"{WES}/runs/{run_id}/tasks")["task_logs"]
    assert len(tasks) >= 4  # 3+ rules and `all`
    assert all(t["exit_code"] == 0 for t in tasks)
    assert "all" in {t["name"] for t in tasks}
    one = _get(api, f"{WES}/runs/{run_id}/tasks/{tasks[0]['id']}")
    assert one == tasks[0]
    assert _get(api, f"{WES}/runs/{run_id}/status") == {"run_id": run_id, "state": "COMPLETE"}


def test_task_logs_page_with_opaque_tokens(server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("tsv-summary@1.0.0", None))
    api.wait(run_id)
    seen, token = [], ""
    while True:
        query = f"?page_size=1&page_token={token}" if token else "?page_size=1"
        page = _get(api, f"{WES}/runs/{run_id}/tasks{query}")
        seen += [t["id"] for t in page["task_logs"]]
        token = page["next_page_token"]
        if not token:
            break
    everything = _get(api, f"{WES}/runs/{run_id}/tasks?page_size=100")["task_logs"]
    assert seen == [t["id"] for t in everything]
    assert len(seen) >= 4


def test_failing_rule_gives_executor_error_and_a_failed_task(server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0, "fail": True}))
    assert api.wait(run_id) == "EXECUTOR_ERROR"
    body = _get(api, f"{WES}/runs/{run_id}")
    assert body["run_log"]["exit_code"] != 0
    tasks = _get(api, f"{WES}/runs/{run_id}/tasks")["task_logs"]
    assert any(t["name"] == "finish" and t.get("exit_code") == 1 for t in tasks)


def test_cancel_stops_the_engine_and_its_children(server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 300}))
    api.wait(run_id, {"RUNNING"})
    workdir = server.home / "runs" / run_id
    _wait_for((workdir / "work/results/first.txt").exists)
    resp = api.post(f"{WES}/runs/{run_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert_valid_wes(resp)
    assert api.get(f"{WES}/runs/{run_id}/status").json()["state"] in ("CANCELING", "CANCELED")
    assert api.wait(run_id, timeout=30) == "CANCELED"
    assert not _processes_in(workdir), "engine processes survived the cancel"


def test_cancel_of_a_finished_run_is_a_conflict(server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    api.wait(run_id)
    assert api.post(f"{WES}/runs/{run_id}/cancel").status_code == 409


def test_run_list_pages_newest_first_and_is_stable_under_inserts(
        server: Server, api: Api) -> None:
    ids = [api.run_id(api.submit("sleepy", {"seconds": 0}, tags={"batch": "a"}))
           for _ in range(5)]
    first = _get(api, f"{WES}/runs?page_size=2")
    assert [r["run_id"] for r in first["runs"]] == ids[::-1][:2]
    api.run_id(api.submit("sleepy", {"seconds": 0}, tags={"batch": "b"}))  # concurrent insert
    rest, token = [], first["next_page_token"]
    while token:
        page = _get(api, f"{WES}/runs?page_size=2&page_token={token}")
        rest += [r["run_id"] for r in page["runs"]]
        token = page["next_page_token"]
    assert rest == ids[::-1][2:]


def test_run_list_filters_by_state_and_tag(server: Server, api: Api) -> None:
    a = api.run_id(api.submit("sleepy", {"seconds": 0}, tags={"study": "x1"}))
    b = api.run_id(api.submit("sleepy", {"seconds": 0, "fail": True}, tags={"study": "x2"}))
    api.wait(a)
    api.wait(b)
    by_tag = _get(api, f"{WES}/runs?tag=study:x1")["runs"]
    assert [r["run_id"] for r in by_tag] == [a]
    assert by_tag[0]["tags"] == {"study": "x1"}
    failed = _get(api, f"{WES}/runs?state=EXECUTOR_ERROR")["runs"]
    assert [r["run_id"] for r in failed] == [b]


def test_a_page_token_edited_or_from_another_listing_is_refused(
        server: Server, api: Api) -> None:
    for _ in range(3):
        api.run_id(api.submit("sleepy", {"seconds": 0}))
    token = _get(api, f"{WES}/runs?page_size=1")["next_page_token"]
    assert token
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert api.get(f"{WES}/runs?page_token={forged}").status_code == 400
    other = server.api("token-thief")
    assert other.get(f"{WES}/runs?page_token={token}").status_code == 400
    assert api.get(f"{WES}/runs?page_token={token}&state=COMPLETE").status_code == 400


def test_another_user_gets_404_for_every_run_endpoint(server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    api.wait(run_id)
    task_id = api.get(f"{WES}/runs/{run_id}/tasks").json()["task_logs"][0]["id"]
    mallory = server.api("mallory")
    for path in (f"{WES}/runs/{run_id}", f"{WES}/runs/{run_id}/status",
                 f"{WES}/runs/{run_id}/tasks", f"{WES}/runs/{run_id}/tasks/{task_id}",
                 f"/spe/v1/runs/{run_id}/logs/stderr", f"/spe/v1/runs/{run_id}/outputs"):
        assert mallory.get(path).status_code == 404, path
    assert mallory.post(f"{WES}/runs/{run_id}/cancel").status_code == 404
    assert run_id not in mallory.get(f"{WES}/runs").text


def test_engine_log_is_output_and_not_served_by_default(server: Server, api: Api) -> None:
    """The built-in policy's project keeps engine logs for the airlock (issue 11): the
    owner gets 403 naming the file to request; the served, size-capped tail of a project
    with ``logs: direct`` is tested in tests/security/test_engine_logs.py."""
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    api.wait(run_id)
    resp = api.get(f"/spe/v1/runs/{run_id}/logs/stderr")
    assert resp.status_code == 403
    assert "_logs/stderr.txt" in resp.json()["msg"] and "airlock" in resp.json()["msg"]
    run_log = api.get(f"{WES}/runs/{run_id}").json()["run_log"]
    assert "stdout" not in run_log and "stderr" not in run_log


def test_workflows_listing_carries_schemas_and_examples(server: Server, api: Api) -> None:
    resp = api.get("/spe/v1/workflows")
    assert resp.status_code == 200
    entries = {e["ref"]: e for e in resp.json()["workflows"]}
    assert {"tsv-summary@1.0.0", "tsv-summary@1.1.0", "gsea-rank@1.0.0"} <= set(entries)
    # a Nextflow entry is offered only where nextflow is installed (issue 14)
    assert ("nf-wordcount@1.0.0" in entries) == (shutil.which("nextflow") is not None)
    tsv = entries["tsv-summary@1.0.0"]
    assert tsv["bundle_digest"].startswith("sha256:")
    assert tsv["params_schema"]["type"] == "object"
    assert tsv["examples"] and "params" in tsv["examples"][0]
    assert api.get("/spe/v1/workflows/tsv-summary").json()["ref"] == "tsv-summary@1.1.0"
    assert api.get("/spe/v1/workflows/nope").status_code == 404


def _wait_for(check: object, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _processes_in(workdir: Path) -> list[int]:
    """Live processes whose command line mentions the run's directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(workdir) in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def test_auth_instructions_url_leads_to_instructions(server: Server) -> None:
    url = _get(server.api(), f"{WES}/service-info")["auth_instructions_url"]
    assert url.endswith("/spe/v1/auth-instructions")
    import requests

    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200
    assert "spe dev token" in resp.text
