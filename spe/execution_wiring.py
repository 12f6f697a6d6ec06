"""Composition of the execution side: which executor runs the runs and, on SLURM, whom the
jobs run as, where the engines send their jobs, the site's limits, and the check that
refuses a submission that could never execute. Used by ``spe.app`` only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spe.adapters.executors.local import LocalExecutor
from spe.adapters.executors.slurm import SlurmExecutor
from spe.adapters.executors.workdir import account_problem
from spe.config import Settings
from spe.domain.errors import Forbidden
from spe.domain.models import Principal, Run
from spe.domain.policy import Policy
from spe.domain.ports import EngineTarget, JobAccount
from spe.domain.resources import SiteLimits, rule_job_resources


def executor_wiring(settings: Settings, policy: Policy) -> dict[str, Any]:
    """The executor and, for SLURM, whom jobs run as, where the engines send their jobs,
    and the site's limits: the Execution arguments that depend on ``settings.executor``."""
    if settings.executor == "local":
        return {"executor": LocalExecutor(settings.cancel_grace_seconds)}
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
                            job_resources=rule_job_resources(resources))

    return {"executor": executor, "job_account": job_account, "engine_target": engine_target,
            "limits": SiteLimits(settings.slurm_max_cpus, settings.slurm_max_memory_mb,
                                 settings.slurm_max_time_minutes)}


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
