"""The execution service as tests build it: the real catalog, a real SQLite (or given)
repository, the real job-file adapter and a quarantine in a temporary folder, on the
executor a test chooses (a fake, a blocking fake...)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml

from spe.adapters.catalog import load_catalog
from spe.adapters.db.repository import SqlAuditLog, SqlRunRepository
from spe.adapters.db.task_logs import SqlTaskLogRepository
from spe.adapters.jobfiles import LocalJobFiles
from spe.adapters.storage.factory import StoreFactory
from spe.domain.clock import utc_now
from spe.domain.policy_file import parse_policy
from spe.domain.ports import Executor, ExecutorChoice, WorkflowEngine
from spe.services.access import Gate
from spe.services.data import DataService
from spe.services.execution import Execution, Tuning
from tests.fakes import SleepEngine
from tests.helpers import ROOT

POLICY = ROOT / "tests/fixtures/policy/two-projects.yaml"


def data_service(repo: SqlRunRepository, quarantine: Path,
                 stores: Callable[[str], object] | None = None) -> DataService:
    """Quarantine under ``quarantine/<project>``, in a real filesystem store."""
    policy = parse_policy(yaml.safe_load(POLICY.read_text()))
    quarantine.mkdir(parents=True, exist_ok=True)

    def location(project: str) -> str:
        (quarantine / project).mkdir(exist_ok=True)
        return str(quarantine / project)

    return DataService(gate=Gate(policy), stores=stores or StoreFactory(),  # type: ignore[arg-type]
                       audit=SqlAuditLog(repo._sessions),
                       quarantine_location=location, files=LocalJobFiles())


def execution(repo: SqlRunRepository, tmp_path: Path, executor: Executor, *,
              engine: WorkflowEngine | None = None, tuning: Tuning | None = None,
              clock: Callable[[], datetime] = utc_now,
              data: DataService | None = None) -> Execution:
    catalog, bundles = load_catalog(ROOT / "workflows")
    return Execution(repo=repo, task_logs=SqlTaskLogRepository(repo._sessions),
                     catalog=catalog, bundles=bundles,
                     engines={"snakemake": engine or SleepEngine()},
                     choice=ExecutorChoice(executor), runs_dir=tmp_path / "runs",
                     data=data or data_service(repo, tmp_path / "quarantine"),
                     files=LocalJobFiles(), audit=SqlAuditLog(repo._sessions),
                     tuning=tuning or Tuning(), clock=clock)
