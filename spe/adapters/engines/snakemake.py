"""The Snakemake engine: an argv builder and a reader of what Snakemake reported.

Task logs come from the job events that spe's logger plugin (``--logger spe``,
``plugins/snakemake-logger-plugin-spe``) writes as JSON lines; a job without that file (the
plugin not installed where the engine ran, or a run from before it) is read from
Snakemake's own human-readable log instead (``parse_log``, the fallback)."""

from __future__ import annotations

import importlib.util
import json
import re
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


class SnakemakeEngine:
    name = "snakemake"
    workflow_type = "SMK"
    supported_options = frozenset({"cores", "keep_going", "latency_wait"})

    def __init__(self, binary: str = "snakemake", *, logger_plugin: bool = True) -> None:
        self._binary = resolve_binary(binary)
        self._version: str | None = None
        self.logger_plugin = logger_plugin

    def version(self) -> str:
        if self._version is None:
            self._version = probe_version(self._binary)
        return self._version

    def argv(self, entry: WorkflowEntry, bundle_dir: Path, params_file: Path,
             workdir: Path, options: JSON, *, target: EngineTarget = LOCAL
             ) -> list[str]:
        argv = [
            self._binary,
            "--snakefile", str(bundle_dir / entry.entrypoint),
            "--directory", str(JobDir(workdir).work),
            "--configfile", str(params_file),
            "--cores", str(int(options.get("cores") or 1)),
            "--latency-wait", str(int(options.get("latency_wait") or 5)),
            "--nocolor", "--printshellcmds",
        ]
        if options.get("keep_going"):
            argv.append("--keep-going")
        if self.logger_plugin:
            job = JobDir(workdir)
            argv += ["--logger", LOGGER, "--logger-spe-events", str(job.engine_events),
                     "--logger-spe-progress", str(job.progress)]
        if target.executor == "slurm" and target.rule_jobs_on_cluster(entry.rule_jobs):
            argv += slurm_arguments(target)
        return argv

    def task_logs(self, workdir: Path) -> list[TaskLog]:
        job = JobDir(workdir)
        if job.engine_events.is_file():
            return parse_events(read_log(job.engine_events))
        return parse_log(read_log(job.stderr))

    def output_dir(self, workdir: Path) -> Path:
        return JobDir(workdir).work

    def outputs(self, entry: WorkflowEntry, workdir: Path) -> list[Path]:
        return declared_outputs(entry, self.output_dir(workdir))


LOGGER = "spe"  # plugins/snakemake-logger-plugin-spe: module snakemake_logger_plugin_spe


def logger_plugin_installed() -> bool:
    """Whether spe's logger plugin is importable here (where the service's snakemake runs;
    on a cluster, scripts/cluster-side.sh installs it into the engines venv too)."""
    return importlib.util.find_spec(f"snakemake_logger_plugin_{LOGGER}") is not None


def slurm_arguments(target: EngineTarget) -> list[str]:
    """Rule jobs go to SLURM through snakemake-executor-plugin-slurm (2.x). Status comes
    from squeue: without accounting the plugin's sacct queries fail and it hangs.

    Status checks: the plugin asks every ``--slurm-init-seconds-before-status-checks``
    (its default 40) while a check sees a job end, and adds 10 s to the wait after each
    check that sees none (up to 180 s); snakemake's ``--seconds-between-status-checks``
    only sets the wait before the plugin's first check. So each rule job costs about
    ``init + 10`` s more than its own run time (docs/slurm.md#latency-of-a-small-run)."""
    defaults = [f"{k}={int(v)}" for k, v in sorted(target.job_resources.items())]
    if target.slurm_account:
        defaults.append(f"slurm_account={target.slurm_account}")
    if target.partition:
        defaults.append(f"slurm_partition={target.partition}")
    argv = ["--executor", "slurm", "--jobs", str(target.max_jobs),
            "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", str(int(target.status_init_seconds)),
            "--slurm-no-requeue"]
    if not target.slurm_account:
        argv.append("--slurm-no-account")
    return [*argv, "--default-resources", *defaults] if defaults else argv


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\S+):$")
_ERROR = re.compile(r"^Error in rule (\S+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)$|^Finished job (\d+)\.$")
_SHELLCMD = re.compile(r"^\s*Shell command: (.+)$")
_SLURM = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+)")


def _stamp(text: str) -> datetime:
    # Snakemake prints local time without a zone; the service runs in UTC.
    return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)


def parse_log(text: str) -> list[TaskLog]:
    """One TaskLog per Snakemake job seen in its log, ordered by job id."""
    jobs: dict[int, dict[str, object]] = {}
    stamp: datetime | None = None
    pending: tuple[str, str] | None = None  # ("start"|"error", rule) awaiting its jobid
    current: dict[str, object] | None = None  # the job whose start block we are in
    for line in text.splitlines():
        if m := _STAMP.match(line.strip()):
            stamp = _stamp(m.group(1))
        elif m := _RULE.match(line):
            pending = ("start", m.group(1))
        elif m := _ERROR.match(line):
            pending = ("error", m.group(1))
        elif (m := _JOBID.match(line)) and pending:
            kind, rule = pending
            job = jobs.setdefault(int(m.group(1)), {"name": rule})
            if kind == "start":
                job["start"], current = stamp, job
            else:
                job["end"], job["exit"] = stamp, 1
            pending = None
        elif (m := _SHELLCMD.match(line)) and current is not None:
            if m.group(1).strip() != "None":
                job_cmd = m.group(1).strip()
                current["cmd"] = job_cmd
            current = None
        elif m := _SLURM.match(line.strip()):
            job = jobs.setdefault(int(m.group(1)), {"name": "?"})
            job["slurm"] = m.group(2)
        elif m := _FINISHED.match(line):
            job = jobs.setdefault(int(m.group(1) or m.group(3)), {"name": m.group(2) or "?"})
            job["end"], job["exit"] = stamp, 0
    return [_task(jobid, job) for jobid, job in sorted(jobs.items())]


def _task(jobid: int, job: dict[str, object]) -> TaskLog:
    start, end, code, cmd = job.get("start"), job.get("end"), job.get("exit"), job.get("cmd")
    slurm = job.get("slurm")
    return TaskLog(
        id=str(jobid), name=str(job["name"]), cmd=(cmd,) if isinstance(cmd, str) else (),
        start_time=start if isinstance(start, datetime) else None,
        end_time=end if isinstance(end, datetime) else None,
        exit_code=code if isinstance(code, int) else None,
        system_logs=(f"SLURM job {slurm}",) if slurm else (),
    )


def parse_events(text: str) -> list[TaskLog]:
    """One TaskLog per job of the plugin's events (JSON lines), ordered by job id. A line
    that is not an event of the plugin is skipped."""
    jobs: dict[int, dict[str, object]] = {}
    for line in text.splitlines():
        parsed = _event(line)
        if parsed is None:
            continue
        kind, jobid, at, event = parsed
        job = jobs.setdefault(jobid, {"name": "?"})
        rule = event.get("rule")
        if isinstance(rule, str) and rule:
            job["name"] = rule
        if kind == "started":
            job["start"] = at
        elif kind == "finished":
            job["end"], job["exit"] = at, 0
        elif kind == "failed":
            job["end"], job["exit"] = at, 1
        elif kind == "submitted" and isinstance(event.get("external"), str):
            job["slurm"] = event["external"]
    return [_task(jobid, job) for jobid, job in sorted(jobs.items())]


_JOB_EVENTS = frozenset({"started", "finished", "failed", "submitted"})


def _event(line: str) -> tuple[str, int, datetime, dict[str, object]] | None:
    """A job event of the plugin: its kind, (int) job id, (aware) time and fields."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") not in _JOB_EVENTS:
        return None
    kind, jobid, at = str(event["event"]), event.get("jobid"), event.get("at")
    if not isinstance(jobid, int) or isinstance(jobid, bool) or jobid < 0:
        return None
    try:
        moment = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        return None
    if moment is None or moment.utcoffset() is None:
        return None
    return kind, jobid, moment.astimezone(UTC), event
