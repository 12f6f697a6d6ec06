"""The Nextflow engine: an argv builder and a parser of Nextflow's trace file."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from spe.adapters.engines.common import declared_outputs, probe_version, resolve_binary
from spe.domain.catalog import WorkflowEntry
from spe.domain.models import JSON, TaskLog

OUTPUT_DIR = "."  # Nextflow publishes relative to its launch directory, the run dir
TRACE_FILE = "logs/trace.tsv"
TRACE_FIELDS = "task_id,hash,native_id,name,status,exit,submit,complete"


class NextflowEngine:
    name = "nextflow"
    workflow_type = "NFL"
    supported_options = frozenset({"max_cpus", "resume"})

    def __init__(self, binary: str = "nextflow") -> None:
        self._binary = resolve_binary(binary)
        self._version: str | None = None

    def version(self) -> str:
        if self._version is None:
            self._version = probe_version(self._binary, "-version")
        return self._version

    def argv(self, entry: WorkflowEntry, bundle_dir: Path, params_file: Path,
             workdir: Path, options: JSON) -> list[str]:
        config = workdir / "spe.config"
        config.write_text(_config_text(int(options.get("max_cpus") or 1)), encoding="utf-8")
        argv = [
            self._binary, "-log", str(workdir / "logs" / "nextflow.log"), "run",
            str(bundle_dir / entry.entrypoint),
            "-c", str(config),
            "-params-file", str(params_file),
            "-work-dir", str(workdir / "nextflow-work"),
            "-with-trace", str(workdir / TRACE_FILE),
            "-ansi-log", "false",
        ]
        if options.get("resume"):
            argv.append("-resume")
        return argv

    def task_logs(self, workdir: Path) -> list[TaskLog]:
        try:
            text = (workdir / TRACE_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return parse_trace(text)

    def output_dir(self, workdir: Path) -> Path:
        return workdir / OUTPUT_DIR

    def outputs(self, entry: WorkflowEntry, workdir: Path) -> list[Path]:
        return declared_outputs(entry, self.output_dir(workdir))


def _config_text(cpus: int) -> str:
    """Service-side settings only: typed integers, never user strings."""
    return (f"process.cpus = {cpus}\n"
            f"executor.cpus = {cpus}\n"
            f"trace.fields = '{TRACE_FIELDS}'\n"
            "trace.overwrite = true\n")


def _time(value: str | None) -> datetime | None:
    if not value or value == "-":
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def parse_trace(text: str) -> list[TaskLog]:
    """One TaskLog per row of a Nextflow trace file (default or custom field set)."""
    tasks = []
    for row in csv.DictReader(io.StringIO(text), delimiter="\t"):
        exit_raw = (row.get("exit") or "").strip()
        tasks.append(TaskLog(
            id=(row.get("task_id") or "").strip(), name=(row.get("name") or "").strip(),
            start_time=_time(row.get("submit")), end_time=_time(row.get("complete")),
            exit_code=int(exit_raw) if exit_raw.lstrip("-").isdigit() else None,
            system_logs=tuple(f"{k}={row[k]}" for k in ("status", "native_id", "hash")
                              if row.get(k)),
        ))
    return sorted(tasks, key=lambda t: int(t.id) if t.id.isdigit() else 0)
