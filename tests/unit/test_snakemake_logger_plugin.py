"""spe's Snakemake logger plugin (plugins/snakemake-logger-plugin-spe) on the log records
Snakemake 9 emits: it writes job ids, rule names, times, counts and scheduler ids, and
never a data value (wildcards, params, file names, shell commands, messages), however the
record carries one. The real engine is exercised in tests/api/test_snakemake_events.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

plugin = pytest.importorskip(
    "snakemake_logger_plugin_spe",
    reason="the logger plugin is installed by scripts/bootstrap.sh with the snakemake extra")
from snakemake_interface_logger_plugins.common import LogEvent  # noqa: E402

CANARY = "canary-7f3a"


def _record(msg: str | None, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("snakemake", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def _handler(tmp_path: Path) -> Any:
    settings = plugin.LogHandlerSettings(events=str(tmp_path / "events.jsonl"),
                                         progress=str(tmp_path / "progress.json"))
    return plugin.LogHandler(common_settings=None, settings=settings)


def test_the_plugin_writes_job_events_and_no_data_value(tmp_path: Path) -> None:
    handler = _handler(tmp_path)
    data = {"input": [f"{CANARY}.tsv"], "output": [f"results/{CANARY}.csv"],
            "log": [f"{CANARY}.log"], "wildcards": {"sample": CANARY},
            "shellcmd": f"python x.py {CANARY}", "rule_msg": CANARY,
            "resources": {"tmpdir": CANARY}, "reason": CANARY}
    for record in [
        _record(f"Job stats: {CANARY}", event=LogEvent.RUN_INFO,
                stats={f"rule_{CANARY}": 3, "total": 3}),
        _record(" Rule: summarise, Jobid: 1", event=LogEvent.JOB_INFO, jobid=1,
                rule_name="summarise", **data),
        _record(f"Shell command: {CANARY}", event=LogEvent.SHELLCMD, shellcmd=CANARY),
        _record(None, event=LogEvent.JOB_FINISHED, job_id=1),
        _record(None, event=LogEvent.PROGRESS, done=1, total=3),
        _record("Job 2 has been submitted with SLURM jobid 4711 (log: x)."),
        _record("Error in rule plot, jobid: 2", event=LogEvent.JOB_ERROR, jobid=2,
                rule_name="plot", **data),
        _record(f"RuleException: {CANARY}", event=LogEvent.ERROR, exception=CANARY),
        _record(f"plain message {CANARY}"),
    ]:
        handler.handle(record)
    handler.close()

    text = (tmp_path / "events.jsonl").read_text()
    assert CANARY not in text + (tmp_path / "progress.json").read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert [{k: v for k, v in e.items() if k != "at"} for e in events] == [
        {"event": "planned", "total": 3},
        {"event": "started", "jobid": 1, "rule": "summarise"},
        {"event": "finished", "jobid": 1},
        {"event": "progress", "done": 1, "total": 3},
        {"event": "submitted", "jobid": 2, "external": "4711"},
        {"event": "failed", "jobid": 2, "rule": "plot"},
    ]
    assert all(e["at"].endswith("Z") for e in events)
    assert json.loads((tmp_path / "progress.json").read_text()) == {"planned": 3, "done": 1}


def test_a_malformed_record_is_skipped(tmp_path: Path) -> None:
    handler = _handler(tmp_path)
    handler.handle(_record(None, event=LogEvent.JOB_INFO, jobid="1; rm", rule_name="x"))
    handler.handle(_record(None, event=LogEvent.RUN_INFO, stats="not a dict"))
    handler.handle(_record(None, event=LogEvent.JOB_FINISHED, job_id=None))
    handler.close()
    assert (tmp_path / "events.jsonl").read_text() == ""
    assert not (tmp_path / "progress.json").exists()
