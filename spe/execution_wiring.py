"""The built-in executors and engines, as the registry (``spe.registry``) builds them:
executor factories ``(settings, policy) -> ExecutorChoice`` (group ``spe.executors``),
engine factories ``(settings) -> WorkflowEngine`` (group ``spe.engines``); and the check
that refuses a submission that could never execute."""

from __future__ import annotations

import sys
from collections.abc import Callable

from spe.adapters.containers.apptainer import Apptainer
from spe.adapters.containers.charliecloud import Charliecloud
from spe.adapters.containers.driver_files import LocalTaskDriver
from spe.adapters.containers.images import DirectoryImages
from spe.adapters.engines.nextflow import NextflowEngine
from spe.adapters.engines.snakemake import SnakemakeEngine, logger_plugin_installed
from spe.adapters.executors.local import LocalExecutor
from spe.adapters.executors.slurm import SlurmExecutor
from spe.adapters.executors.workdir import account_problem
from spe.config import Settings
from spe.domain.errors import Forbidden
from spe.domain.models import Principal, Run
from spe.domain.policy import Policy
from spe.domain.ports import (
    AuditLog,
    EngineTarget,
    ExecutorChoice,
    JobAccount,
    WorkflowEngine,
)
from spe.domain.resources import SiteLimits, rule_job_resources
from spe.domain.task_ports import ContainerRuntime
from spe.services.data import DataService
from spe.services.task_jobs import TaskJobs


def local_executor(settings: Settings, policy: Policy) -> ExecutorChoice:
    """Runs on this machine, as the service's own account (the embedded default)."""
    return ExecutorChoice(LocalExecutor(settings.cancel_grace_seconds))


def slurm_executor(settings: Settings, policy: Policy) -> ExecutorChoice:
    """A SLURM cluster: whom jobs run as, where the engines send their jobs, and the
    site's limits come from the settings and the policy."""
    as_researcher = settings.slurm_submit_as == "researcher"
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    if as_researcher:
        settings.runs_dir.chmod(0o711)  # researchers reach their run, list nothing
    executor = SlurmExecutor(bin_dir=settings.slurm_bin_dir, partition=settings.slurm_partition,
                             as_researcher=as_researcher, accounting=settings.slurm_accounting,
                             timeout=settings.slurm_command_timeout_seconds,
                             engine_path=settings.slurm_engine_path)

    def job_account(run: Run) -> JobAccount | None:
        return policy.job_account(run.owner_sub, run.owner_name, run.project) \
            if as_researcher else None

    def engine_target(account: JobAccount | None, resources: dict[str, int]) -> EngineTarget:
        return EngineTarget(executor="slurm", partition=settings.slurm_partition,
                            slurm_account=account.slurm_account if account else "",
                            job_resources=rule_job_resources(resources),
                            rule_jobs=settings.slurm_rule_jobs,
                            status_init_seconds=settings.slurm_status_init_seconds)

    return ExecutorChoice(executor, job_account, engine_target,
                          SiteLimits(settings.slurm_max_cpus, settings.slurm_max_memory_mb,
                                     settings.slurm_max_time_minutes))


def snakemake_engine(settings: Settings) -> WorkflowEngine:
    return SnakemakeEngine(settings.snakemake_bin, logger_plugin=logger_plugin_installed())


def nextflow_engine(settings: Settings) -> WorkflowEngine:
    return NextflowEngine(settings.nextflow_bin)


def execution_preflight(settings: Settings, policy: Policy) -> Callable[[Principal, str], object]:
    """Refuses a submission that could never execute: on SLURM as the researcher, an owner
    without a POSIX account or a project without a POSIX group (403, deny by default)."""
    def check(who: Principal, project: str) -> None:
        account = policy.job_account(who.sub, who.username, project)
        problem = account_problem(account.user, account.group)
        if problem:
            raise Forbidden(f"{problem}; runs of this project cannot execute for you "
                            "(ask the operators)")

    if settings.executor == "slurm" and settings.slurm_submit_as == "researcher":
        return check
    return lambda who, project: None


def container_runtime(settings: Settings) -> ContainerRuntime:
    if settings.container_runtime == "apptainer":
        return Apptainer(settings.apptainer_bin)
    return Charliecloud(settings.ch_run_bin)


def task_jobs(settings: Settings, data: DataService, audit: AuditLog) -> TaskJobs:
    """How TES tasks run: the image store, the container runtime, and the driver (run by
    the service's own Python locally, by Debian's on a cluster's nodes)."""
    python = settings.task_python or (
        "/usr/bin/python3" if settings.executor == "slurm" else sys.executable)
    return TaskJobs(images=DirectoryImages(settings.images_dir),
                    runtime=container_runtime(settings), driver=LocalTaskDriver(python),
                    data=data, audit=audit)
