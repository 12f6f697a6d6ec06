"""The Nextflow adapter: argv and trace parsing (no Nextflow needed)."""

from __future__ import annotations

from pathlib import Path

from spe.adapters.catalog import load_catalog
from spe.adapters.engines.nextflow import NextflowEngine, parse_trace

ROOT = Path(__file__).resolve().parents[2]
TRACE = (
    "task_id\thash\tnative_id\tname\tstatus\texit\tsubmit\tcomplete\n"
    "2\t3b/1a2b3c\t4242\tSUMMARISE\tCOMPLETED\t0\t2026-11-22 05:00:02.100\t"
    "2026-11-22 05:00:03.000\n"
    "1\tab/cdef01\t4241\tCOUNT_WORDS (1)\tFAILED\t2\t2026-11-22 05:00:00.000\t-\n"
)


def test_trace_rows_become_task_logs_ordered_by_task_id() -> None:
    tasks = parse_trace(TRACE)
    assert [(t.id, t.name, t.exit_code) for t in tasks] == [
        ("1", "COUNT_WORDS (1)", 2), ("2", "SUMMARISE", 0)]
    assert tasks[0].end_time is None
    assert "status=FAILED" in tasks[0].system_logs


def test_argv_uses_a_generated_config_and_the_params_file(tmp_path: Path) -> None:
    catalog, _ = load_catalog(ROOT / "workflows")
    entry = catalog.resolve("nf-wordcount")
    argv = NextflowEngine("nextflow").argv(entry, tmp_path / "workflow",
                                           tmp_path / "params.json", tmp_path,
                                           {"max_cpus": 2, "resume": False})
    assert argv[:2] == ["nextflow", "-log"]
    assert argv[argv.index("-params-file") + 1] == str(tmp_path / "params.json")
    config = Path(argv[argv.index("-c") + 1]).read_text()
    assert "process.cpus = 2" in config
    assert "-resume" not in argv
