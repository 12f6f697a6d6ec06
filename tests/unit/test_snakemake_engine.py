"""The Snakemake adapter: argv builder and log parser, against captured real output."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from spe.adapters.catalog import load_catalog
from spe.adapters.engines.snakemake import SnakemakeEngine, parse_log

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "snakemake"
ROOT = Path(__file__).resolve().parents[2]


def _log(name: str) -> str:
    return (FIXTURES / f"{name}.log").read_text()


def test_success_log_gives_one_finished_task_per_job_in_jobid_order() -> None:
    tasks = parse_log(_log("success"))
    assert [(t.id, t.name) for t in tasks] == [
        ("0", "all"), ("1", "summarise"), ("2", "validate"), ("3", "plot"), ("4", "qc")]
    assert all(t.exit_code == 0 for t in tasks)
    validate = tasks[2]
    assert validate.start_time == datetime(2026, 11, 22, 4, 38, 24, tzinfo=UTC)
    assert validate.end_time is not None and validate.end_time >= validate.start_time


def test_failure_log_marks_the_failed_job_and_keeps_the_others() -> None:
    tasks = {t.name: t for t in parse_log(_log("failure"))}
    assert tasks["plot"].exit_code == 1
    assert tasks["qc"].exit_code == 0  # --keep-going let it finish
    assert "all" not in tasks  # never started


def test_a_job_still_running_has_a_start_and_no_end() -> None:
    text = _log("sigterm")
    partial = text[: text.index("Finished jobid: 1")]
    long_sleep = next(t for t in parse_log(partial) if t.name == "long_sleep")
    assert long_sleep.start_time is not None
    assert long_sleep.end_time is None and long_sleep.exit_code is None


def test_shell_commands_are_reported_as_the_task_cmd() -> None:
    tasks = {t.name: t for t in parse_log(_log("sigterm"))}
    assert tasks["long_sleep"].cmd == ("sleep 30 && echo done > results/slept.txt",)
    assert tasks["prepare"].cmd == ("echo ready > results/ready.txt",)


def test_a_killed_group_reports_the_killed_job_as_failed() -> None:
    tasks = {t.name: t for t in parse_log(_log("sigterm_group"))}
    assert tasks["long_sleep"].exit_code == 1


@pytest.mark.parametrize("text", ["", "garbage\n\x00\n", "localrule x:\n    jobid: nope\n"])
def test_unparseable_or_empty_logs_give_no_tasks(text: str) -> None:
    assert parse_log(text) == []


def test_argv_passes_params_only_through_the_config_file(tmp_path: Path) -> None:
    catalog, _ = load_catalog(ROOT / "workflows")
    entry = catalog.resolve("tsv-summary@1.0.0")
    engine = SnakemakeEngine("snakemake")
    argv = engine.argv(entry, tmp_path / "workflow", tmp_path / "params.json", tmp_path,
                       {"cores": 2, "keep_going": True, "latency_wait": 3})
    assert argv[0].endswith("snakemake")
    assert argv[argv.index("--configfile") + 1] == str(tmp_path / "params.json")
    assert argv[argv.index("--cores") + 1] == "2"
    assert "--keep-going" in argv
    assert all(isinstance(a, str) for a in argv)


def test_argv_without_keep_going_has_no_flag(tmp_path: Path) -> None:
    catalog, _ = load_catalog(ROOT / "workflows")
    entry = catalog.resolve("tsv-summary")
    argv = SnakemakeEngine().argv(entry, tmp_path, tmp_path / "p.json", tmp_path,
                                  {"cores": 1, "keep_going": False, "latency_wait": 5})
    assert "--keep-going" not in argv


def test_outputs_are_the_declared_globs_only_and_never_symlinks(tmp_path: Path) -> None:
    catalog, _ = load_catalog(ROOT / "workflows")
    entry = catalog.resolve("tsv-summary")
    results = tmp_path / "work" / "results"
    results.mkdir(parents=True)
    (results / "summary.csv").write_text("a,b\n")
    (results / "summary.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.txt").write_text("outside")
    (results / "leak.csv").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "work" / "scratch.tmp").write_text("not declared")
    found = {p.as_posix() for p in SnakemakeEngine().outputs(entry, tmp_path)}
    assert "results/summary.csv" in found and "results/summary.png" in found
    assert "results/leak.csv" not in found
    assert "scratch.tmp" not in found
