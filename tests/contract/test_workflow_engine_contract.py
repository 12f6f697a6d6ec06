"""The WorkflowEngine port's contract (``spe/domain/ports.py``), run against the Snakemake
and Nextflow adapters and the fake engine of ``tests/fakes.py``:

- ``argv`` is a list of str, never a shell, with no user value in it (nor in any file it
  writes): user values reach the engine only through the params file;
- ``task_logs`` is ordered by job id, gives nothing for an absent or unreadable log, and
  for a log cut anywhere the jobs seen so far (a line still being written is not read);
- ``outputs`` are the declared files found, relative to ``output_dir`` (inside the work
  directory), never symlinks.

The logs are the captured Snakemake output of ``tests/fixtures/snakemake``, the job events
of spe's Snakemake logger plugin in ``tests/fixtures/snakemake-events`` (the
``snakemake-events`` rig; ``snakemake`` is the fallback parser of Snakemake's own log) and
the Nextflow traces of ``tests/fixtures/nextflow`` (hand-written: see its README)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from spe.adapters.catalog import load_catalog
from spe.adapters.engines import nextflow
from spe.adapters.engines.nextflow import NextflowEngine
from spe.adapters.engines.snakemake import SnakemakeEngine
from spe.domain.catalog import WorkflowEntry
from spe.domain.jobdir import RELATIVE, JobDir
from spe.domain.models import TaskLog
from spe.domain.params import validate_engine_options
from spe.domain.ports import LOCAL, EngineTarget, WorkflowEngine
from tests.fakes import SleepEngine

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CANARY = "canary-7f3a"
HOSTILE = f"{CANARY}; rm -rf / $(touch pwned) `id` --help\n{CANARY}"
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish"}
SLURM = EngineTarget(executor="slurm", slurm_account="proj-a", partition="short",
                     max_jobs=4, job_resources={"mem_mb": 2048, "runtime": 30})


@dataclass(frozen=True)
class Rig:
    """One engine, the catalog entry it runs, and where it reads its log in a work dir."""

    engine: WorkflowEngine
    entry: WorkflowEntry
    log_file: Path | None  # where in a job's directory it reads its log; None: no log


def _entry(ref: str) -> WorkflowEntry:
    catalog, _ = load_catalog(ROOT / "workflows")
    return catalog.resolve(ref)


RIGS: dict[str, Callable[[], Rig]] = {
    "snakemake": lambda: Rig(SnakemakeEngine(logger_plugin=False),
                             _entry("tsv-summary@1.0.0"), RELATIVE.stderr),
    "snakemake-events": lambda: Rig(SnakemakeEngine(), _entry("tsv-summary@1.0.0"),
                                    RELATIVE.engine_events),
    "nextflow": lambda: Rig(NextflowEngine(), _entry("nf-wordcount@1.0.0"),
                            RELATIVE.log(nextflow.TRACE_FILE)),
    "fake": lambda: Rig(SleepEngine(), _entry("tsv-summary@1.0.0"), None),
}
CAPTURED = [("snakemake", FIXTURES / "snakemake" / f"{name}.log")
            for name in ("success", "failure", "sigterm", "sigterm_group")] + \
           [("snakemake-events", FIXTURES / "snakemake-events" / f"{name}.jsonl")
            for name in ("success", "failure")] + \
           [("nextflow", FIXTURES / "nextflow" / f"{name}.tsv")
            for name in ("success", "failure")]


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest) -> Rig:
    return RIGS[request.param]()


def place(workdir: Path, rig: Rig, text: str | bytes) -> None:
    assert rig.log_file is not None
    log = workdir / rig.log_file
    log.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        log.write_bytes(text)
    else:
        log.write_text(text, encoding="utf-8")


def job_ids(tasks: list[TaskLog]) -> list[int]:
    return [int(t.id) for t in tasks]


def assert_well_formed(tasks: list[TaskLog]) -> None:
    """Ordered by job id, one task per job, times aware (UTC) and in order."""
    ids = job_ids(tasks)
    assert ids == sorted(ids), ids
    assert len(set(ids)) == len(ids), ids
    for task in tasks:
        for moment in (task.start_time, task.end_time):
            assert moment is None or moment.utcoffset() == timedelta(0)
        if task.start_time and task.end_time:
            assert task.end_time >= task.start_time
        assert all(isinstance(part, str) for part in task.cmd)


# --- argv ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [LOCAL, SLURM], ids=["local", "slurm"])
def test_argv_is_a_list_of_str_with_no_user_value_and_no_shell(
        rig: Rig, target: EngineTarget, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    names = rig.entry.params_schema.get("properties", {})
    params.write_text(json.dumps(dict.fromkeys(names, HOSTILE)))
    options = validate_engine_options(rig.entry, {})
    workdir = tmp_path / "run"
    JobDir(workdir).logs.mkdir(parents=True)

    argv = rig.engine.argv(rig.entry, tmp_path / "workflow", params, workdir, options,
                           target=target)

    assert isinstance(argv, list) and argv
    assert all(isinstance(arg, str) for arg in argv), argv
    assert not any(CANARY in arg for arg in argv), argv
    assert Path(argv[0]).name not in SHELLS and "-c" not in argv[:2]
    written = [p for p in workdir.rglob("*") if p.is_file()]
    for path in written:  # e.g. Nextflow's generated config
        assert CANARY not in path.read_text(errors="replace"), path


# --- task_logs ----------------------------------------------------------------------------


def test_an_absent_log_gives_no_tasks(rig: Rig, tmp_path: Path) -> None:
    assert rig.engine.task_logs(tmp_path / "never-created") == []
    assert rig.engine.task_logs(tmp_path) == []


@pytest.mark.parametrize("garbage", [b"", b"\n\n", b"\xff\xfe\x00\x80garbage\n\x00",
                                     b"jobid: x\n\ttask_id\n-\t-\t-\n"], ids=repr)
def test_an_unreadable_log_gives_no_error(rig: Rig, garbage: bytes, tmp_path: Path) -> None:
    if rig.log_file:
        place(tmp_path, rig, garbage)
    assert_well_formed(rig.engine.task_logs(tmp_path))


@pytest.mark.parametrize(("name", "log"), CAPTURED, ids=lambda v: getattr(v, "name", v))
def test_a_captured_log_gives_its_jobs_ordered_by_id(name: str, log: Path,
                                                      tmp_path: Path) -> None:
    rig = RIGS[name]()
    place(tmp_path, rig, log.read_text(encoding="utf-8"))
    tasks = rig.engine.task_logs(tmp_path)
    assert tasks, f"{log.name} gives no task"
    assert_well_formed(tasks)
    assert all(t.name for t in tasks)


@pytest.mark.parametrize(("name", "log"), CAPTURED, ids=lambda v: getattr(v, "name", v))
def test_a_log_cut_anywhere_gives_the_jobs_seen_so_far(name: str, log: Path,
                                                        tmp_path: Path) -> None:
    """Every prefix of the log, as the engine may leave it at any moment: the result is
    that of the complete lines before the cut, and jobs are only ever added."""
    rig = RIGS[name]()
    text = log.read_text(encoding="utf-8")
    place(tmp_path, rig, text)
    everything = set(job_ids(rig.engine.task_logs(tmp_path)))
    by_lines: dict[int, list[TaskLog]] = {}
    seen: set[int] = set()
    for cut in range(len(text) + 1):
        place(tmp_path, rig, text[:cut])
        tasks = rig.engine.task_logs(tmp_path)
        assert_well_formed(tasks)
        line_end = text.rfind("\n", 0, cut) + 1
        if line_end not in by_lines:
            place(tmp_path, rig, text[:line_end])
            by_lines[line_end] = rig.engine.task_logs(tmp_path)
        assert tasks == by_lines[line_end], f"cut at {cut}: {text[line_end:cut]!r}"
        ids = set(job_ids(tasks))
        assert seen <= ids <= everything, f"cut at {cut}"
        seen = ids


# --- Snakemake: the plugin's events, and the fallback on its own log ------------------------


def _fields(tasks: list[TaskLog]) -> list[tuple[str, str, int | None]]:
    return [(t.id, t.name, t.exit_code) for t in tasks]


@pytest.mark.parametrize(("name", "jobs"), [
    ("success", [("0", "all", 0), ("1", "summarise", 0), ("2", "validate", 0),
                 ("3", "plot", 0), ("4", "qc", 0)]),
    ("failure", [("1", "summarise", 0), ("2", "validate", 0), ("3", "plot", 1),
                 ("4", "qc", 0)])])
def test_the_events_and_the_fallback_give_the_same_jobs_of_one_run(
        name: str, jobs: list[tuple[str, str, int | None]], tmp_path: Path) -> None:
    """The same two runs, read from the plugin's events and from Snakemake's stderr: the
    same job ids, rule names and exit codes, and every finished job has both times."""
    events, fallback = tmp_path / "events", tmp_path / "fallback"
    place(events, RIGS["snakemake-events"](), (FIXTURES / "snakemake-events" /
                                               f"{name}.jsonl").read_text())
    place(fallback, RIGS["snakemake"](), (FIXTURES / "snakemake-events" /
                                          f"{name}.stderr.log").read_text())
    from_events = SnakemakeEngine().task_logs(events)
    assert _fields(from_events) == jobs
    assert _fields(SnakemakeEngine().task_logs(fallback)) == jobs
    for task in from_events:
        assert task.start_time and task.end_time and task.cmd == ()


def test_the_events_when_present_win_over_the_engine_log(tmp_path: Path) -> None:
    """A job with the plugin's events file is read from it (even while it is still empty),
    never from stderr; a job without it falls back to stderr."""
    place(tmp_path, RIGS["snakemake"](), (FIXTURES / "snakemake" / "success.log").read_text())
    assert len(SnakemakeEngine().task_logs(tmp_path)) == 5
    place(tmp_path, RIGS["snakemake-events"](), "")
    assert SnakemakeEngine().task_logs(tmp_path) == []
    place(tmp_path, RIGS["snakemake-events"](),
          (FIXTURES / "snakemake-events" / "failure.jsonl").read_text())
    assert [t.id for t in SnakemakeEngine().task_logs(tmp_path)] == ["1", "2", "3", "4"]


@pytest.mark.parametrize("line", [
    '{"event":"started","at":"2026-12-05T17:27:35Z","jobid":"1","rule":"x"}',
    '{"event":"started","at":"2026-12-05T17:27:35","jobid":1,"rule":"x"}',
    '{"event":"started","at":"yesterday","jobid":1,"rule":"x"}',
    '{"event":"started","at":"2026-12-05T17:27:35Z","jobid":true,"rule":"x"}',
    '{"event":"started","at":"2026-12-05T17:27:35Z","jobid":-1,"rule":"x"}',
    '{"event":"exploded","at":"2026-12-05T17:27:35Z","jobid":1}',
    '["started", 1]', "not json"])
def test_an_event_that_is_not_the_plugins_is_skipped(line: str, tmp_path: Path) -> None:
    good = '{"event":"finished","at":"2026-12-05T17:27:36Z","jobid":2}'
    place(tmp_path, RIGS["snakemake-events"](), f"{line}\n{good}\n")
    assert _fields(SnakemakeEngine().task_logs(tmp_path)) == [("2", "?", 0)]


def test_the_argv_asks_for_the_plugin_with_the_job_directorys_files(tmp_path: Path) -> None:
    rig = RIGS["snakemake-events"]()
    job = JobDir(tmp_path / "run")
    argv = rig.engine.argv(rig.entry, tmp_path / "workflow", tmp_path / "params.json",
                           job.root, {})
    assert argv[argv.index("--logger") + 1] == "spe"
    assert argv[argv.index("--logger-spe-events") + 1] == str(job.engine_events)
    assert argv[argv.index("--logger-spe-progress") + 1] == str(job.progress)
    fallback = RIGS["snakemake"]().engine.argv(rig.entry, tmp_path / "workflow",
                                               tmp_path / "params.json", job.root, {})
    assert not any(arg.startswith("--logger") for arg in fallback)


# --- output_dir / outputs -----------------------------------------------------------------


def test_output_dir_is_inside_the_work_directory(rig: Rig, tmp_path: Path) -> None:
    out = rig.engine.output_dir(tmp_path)
    assert out == tmp_path or out.is_relative_to(tmp_path)


def test_outputs_of_a_run_that_wrote_nothing_are_empty(rig: Rig, tmp_path: Path) -> None:
    assert rig.engine.outputs(rig.entry, tmp_path / "never-created") == []
    assert rig.engine.outputs(rig.entry, tmp_path) == []


def test_outputs_are_the_declared_files_relative_to_output_dir(rig: Rig,
                                                               tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    out = rig.engine.output_dir(workdir)
    declared = [Path(pattern) for pattern in rig.entry.outputs]
    assert len(declared) >= 2, "the entry needs two declared outputs for this test"
    real, *linked = declared
    (out / real).parent.mkdir(parents=True, exist_ok=True)
    (out / real).write_text("produced\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the run\n")
    for path in linked:  # declared, but a symlink out of the run: never an output
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).symlink_to(secret)
    (out / "undeclared.txt").write_text("not an output\n")

    found = rig.engine.outputs(rig.entry, workdir)

    for path in found:
        assert not path.is_absolute() and ".." not in path.parts, path
        assert (out / path).is_file() and not (out / path).is_symlink(), path
    assert found == [real]
