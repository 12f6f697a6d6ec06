"""The one place that names the paths of a job's directory (a WES run today; a TES task
beside it). Services, engines and executors ask a ``JobDir`` for a path; none spells one.

| path                | written by                  | what                                    |
|---------------------|-----------------------------|-----------------------------------------|
| ``workflow/``       | the service (from catalog)  | the approved bundle, copied             |
| ``inputs/``         | the service (staging)       | a run's inputs, linked or downloaded    |
| ``params.json``     | the service                 | the engine's parameters                 |
| ``work/``           | the engine                  | the engine's working dir: the outputs   |
| ``logs/``           | the engine, the executor    | stdout, stderr, the engine's own logs   |
| ``tmp/``            | the engine                  | HOME and TMPDIR of the job              |
| ``handle.json``     | the executor                | how to re-attach after a restart        |
| ``exit_status``     | the executor's wrapper      | the engine's exit code, atomically      |
| ``cancel_requested``| the executor                | a cancel was asked for                  |
| ``slurm_job_id``    | the SLURM batch script      | the head job's id                       |
| ``job.sh``, ``job.argv``, ``job.env`` | the SLURM executor | the batch script, the engine's   |
|                     |                             | argv and environment (NUL-separated)    |
| ``.start-lease``    | the worker starting the job | mtime: a live worker is starting it     |
| ``task.json``       | the service (a TES task)    | the driver's plan: each executor's argv |
| ``task_driver.py``  | the service (a TES task)    | the driver (standard library only)      |
| ``executors.json``  | the task driver             | each executor's times and exit code     |
| ``logs/executor-<i>.stdout|stderr`` | the task driver | an executor's streams             |
| ``logs/engine-events.jsonl`` | the engine's logger plugin | job events (JSON lines)   |
| ``logs/progress.json`` | the engine's logger plugin | planned and finished job counts     |

A TES task's container paths live in ``work/``: ``/data/x`` is ``work/data/x``; each
mount point the task uses is bound into its containers (``spe.domain.tes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# the folders the job itself writes into (shared with the project's group on a cluster)
JOB_WRITABLE = ("logs", "tmp", "work")
LOG_STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class JobDir:
    """A job's directory: ``root`` is ``<runs dir>/<job id>``."""

    root: Path

    @classmethod
    def of(cls, jobs_dir: Path, job_id: str) -> JobDir:
        return cls(jobs_dir / job_id)

    @property
    def workflow(self) -> Path:
        return self.root / "workflow"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def params(self) -> Path:
        return self.root / "params.json"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def log(self, name: str) -> Path:
        """A file in ``logs/`` (``stdout.log``, ``stderr.log``, ``trace.tsv``...)."""
        return self.logs / name

    def stream(self, stream: str) -> Path:
        """The engine's own ``stdout`` or ``stderr``; ``KeyError`` for another name."""
        if stream not in LOG_STREAMS:
            raise KeyError(stream)
        return self.log(f"{stream}.log")

    @property
    def stdout(self) -> Path:
        return self.stream("stdout")

    @property
    def stderr(self) -> Path:
        return self.stream("stderr")

    @property
    def handle(self) -> Path:
        return self.root / "handle.json"

    @property
    def exit_status(self) -> Path:
        return self.root / "exit_status"

    @property
    def cancel_requested(self) -> Path:
        return self.root / "cancel_requested"

    @property
    def slurm_job_id(self) -> Path:
        return self.root / "slurm_job_id"

    @property
    def job_script(self) -> Path:
        return self.root / "job.sh"

    @property
    def job_argv(self) -> Path:
        return self.root / "job.argv"

    @property
    def job_env(self) -> Path:
        return self.root / "job.env"

    @property
    def start_lease(self) -> Path:
        return self.root / ".start-lease"

    @property
    def task_plan(self) -> Path:
        return self.root / "task.json"

    @property
    def task_driver(self) -> Path:
        return self.root / "task_driver.py"

    @property
    def executor_records(self) -> Path:
        return self.root / "executors.json"

    @property
    def engine_events(self) -> Path:
        """The job events the engine's logger plugin writes (Snakemake ``--logger spe``)."""
        return self.log("engine-events.jsonl")

    @property
    def progress(self) -> Path:
        """The planned and finished job counts the engine's logger plugin keeps."""
        return self.log("progress.json")

    def executor_stream(self, index: int, stream: str) -> Path:
        """Executor ``index``'s own stdout or stderr (the task driver writes them)."""
        if stream not in LOG_STREAMS:
            raise KeyError(stream)
        return self.log(f"executor-{index}.{stream}")

    def container(self, path: str) -> Path:
        """Where a (checked) container path of a TES task lies in the job."""
        return self.work / path.strip("/")


def quarantined_executor_log(index: int, stream: str) -> str:
    """Where executor ``index``'s ``stream`` is kept in a task's quarantine."""
    if stream not in LOG_STREAMS:
        raise KeyError(stream)
    return f"{LOG_PREFIX}executor-{index}-{stream}.txt"


def quarantined_log(stream: str) -> str:
    """Where the engine's ``stream`` is kept in the run's quarantine when the run ends, so
    that a release request can name it like an output (``_logs/`` is reserved: no
    workflow output may start with it)."""
    if stream not in LOG_STREAMS:
        raise KeyError(stream)
    return f"{LOG_PREFIX}{stream}.txt"


LOG_PREFIX = "_logs/"
QUARANTINED_LOGS = frozenset(quarantined_log(s) for s in LOG_STREAMS)

RELATIVE = JobDir(Path())  # the same names, relative to the job's directory
