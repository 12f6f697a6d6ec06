"""The Nextflow engine: an argv builder and a parser of Nextflow's trace file."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from spe.adapters.engines.common import (
    declared_outputs,
    probe_version,
    read_log,
    resolve_binary,
)
from spe.domain.catalog import WorkflowEntry
from spe.domain.jobdir import JobDir
from spe.domain.models import JSON, TaskLog
from spe.domain.ports import LOCAL, EngineTarget

OUTPUT_DIR = "."  # Nextflow publishes relative to its launch directory, the run dir
TRACE_FILE = "trace.tsv"  # in the job's logs/
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
             workdir: Path, options: JSON, *, target: EngineTarget = LOCAL
             ) -> list[str]:
        config = workdir / "spe.config"
        text = _config_text(int(options.get("max_cpus") or 1))
        if target.executor == "slurm" and target.rule_jobs_on_cluster(entry.rule_jobs):
            text += slurm_config(target)
        config.write_text(text, encoding="utf-8")
        argv = [
            self._binary, "-log", str(JobDir(workdir).log("nextflow.log")), "run",
            str(bundle_dir / entry.entrypoint),
            "-c", str(config),
            "-params-file", str(params_file),
            "-work-dir", str(workdir / "nextflow-work"),
            "-with-trace", str(JobDir(workdir).log(TRACE_FILE)),
            "-ansi-log", "false",
        ]
        if options.get("resume"):
            argv.append("-resume")
        return argv

    def task_logs(self, workdir: Path) -> list[TaskLog]:
        return parse_trace(read_log(JobDir(workdir).log(TRACE_FILE)))

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


def _quoted(value: str) -> str:
    """A Groovy single-quoted string of a value from the policy or settings (never from
    a user); quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def slurm_config(target: EngineTarget) -> str:
    """Processes run as SLURM jobs (the `slurm` executor), in the project's account."""
    lines = ["process.executor = 'slurm'",
             f"executor.queueSize = {int(target.max_jobs)}",
             "executor.pollInterval = '2 sec'"]
    if target.partition:
        lines.append(f"process.queue = {_quoted(target.partition)}")
    if target.slurm_account:
        lines.append(f"process.clusterOptions = {_quoted('--account=' + target.slurm_account)}")
    if "mem_mb" in target.job_resources:
        lines.append(f"process.memory = '{int(target.job_resources['mem_mb'])} MB'")
    if "runtime" in target.job_resources:
        lines.append(f"process.time = '{int(target.job_resources['runtime'])} min'")
    return "\n".join(lines) + "\n"


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
    """One TaskLog per row of a Nextflow trace file (default or custom field set), ordered
    by task id; a row without a numeric ``task_id`` is not a task."""
    tasks = {}
    for row in csv.DictReader(io.StringIO(text), delimiter="\t"):
        task_id = (row.get("task_id") or "").strip()
        if task_id.isascii() and task_id.isdigit():
            tasks[int(task_id)] = _trace_task(task_id, row)
    return [tasks[n] for n in sorted(tasks)]


def _trace_task(task_id: str, row: dict[str, str | None]) -> TaskLog:
    exit_raw = (row.get("exit") or "").strip()
    return TaskLog(
        id=task_id, name=(row.get("name") or "").strip(),
        start_time=_time(row.get("submit")), end_time=_time(row.get("complete")),
        exit_code=int(exit_raw) if exit_raw.lstrip("-").isdigit() else None,
        system_logs=tuple(f"{k}={row[k]}" for k in ("status", "native_id", "hash")
                          if row.get(k)),
    )
