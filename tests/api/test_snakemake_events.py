"""A real `spe serve` runs tsv-summary with spe's Snakemake logger plugin (installed in the
service's venv by scripts/bootstrap.sh): the run's task logs and its planned job total come
from the plugin's events, the events carry no data value, and `spe run status --wait`
shows the planned total."""

from __future__ import annotations

import json
from typing import Any

from spe.adapters.engines.snakemake import SnakemakeEngine, logger_plugin_installed
from spe.api.shapes import iso
from spe.domain.jobdir import JobDir
from tests.api.test_cli_ux import env_for, spe
from tests.helpers import WES, Api, Server

CANARY = "canary7f3a"  # a title the workflow prints in its plot, never in the events


def _tasks(api: Api, run_id: str) -> list[dict[str, Any]]:
    resp = api.get(f"{WES}/runs/{run_id}/tasks")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["task_logs"])


def test_task_logs_and_the_planned_total_come_from_the_plugins_events(
        server: Server, api: Api, user: str) -> None:
    assert logger_plugin_installed(), "scripts/bootstrap.sh installs the logger plugin"
    run_id = api.run_id(api.submit("tsv-summary@1.0.0", {"title": CANARY}))
    assert api.wait(run_id) == "COMPLETE", server.log_tail()
    job = JobDir(server.home / "runs" / run_id)

    events = [json.loads(line) for line in job.engine_events.read_text().splitlines()]
    assert (events[0]["event"], events[0]["total"]) == ("planned", 5)
    assert sorted(e["jobid"] for e in events if e["event"] == "finished") == [0, 1, 2, 3, 4]
    from_events = [{"id": t.id, "name": t.name, "start_time": iso(t.start_time),
                    "end_time": iso(t.end_time), "exit_code": t.exit_code}
                   for t in SnakemakeEngine().task_logs(job.root)]
    served = [{k: t.get(k) for k in ("id", "name", "start_time", "end_time", "exit_code")}
              for t in _tasks(api, run_id)]
    assert served == from_events
    assert [t["name"] for t in served] == ["all", "summarise", "validate", "plot", "qc"]

    resp = api.get(f"/spe/v1/runs/{run_id}/progress")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"run_id": run_id, "planned_jobs": 5, "done_jobs": 5}

    written = job.engine_events.read_text() + job.progress.read_text()
    for value in (CANARY, "cohort_a", "bmi", "site", "results/", ".tsv", "python"):
        assert value not in written, value  # no params, file names or commands

    follow = spe(env_for(server, user), "run", "status", "--wait", run_id)
    assert follow.returncode == 0, follow.stderr
    assert "5/5 jobs" in follow.stderr, follow.stderr


def test_progress_of_another_users_run_is_not_found(server: Server, api: Api) -> None:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    api.wait(run_id)
    other = server.api("stranger-progress")
    assert other.get(f"/spe/v1/runs/{run_id}/progress").status_code == 404
    resp = api.get(f"/spe/v1/runs/{run_id}/progress")
    assert resp.status_code == 200, resp.text
    assert resp.json()["run_id"] == run_id
