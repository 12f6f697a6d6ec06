"""Retention: finished runs older than their project's retention_days are purged by the
sweep (work directory and quarantine), audited, and keep their metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from spe.adapters.catalog import load_catalog
from spe.adapters.db.repository import SqlAuditLog, SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.task_logs import SqlTaskLogRepository
from spe.adapters.jobfiles import LocalJobFiles
from spe.adapters.queue.inline import NullDispatcher
from spe.adapters.storage.factory import StoreFactory
from spe.domain.models import Run, RunRequest
from spe.domain.paging import PageTokens
from spe.domain.policy_file import parse_policy
from spe.domain.states import RunState
from spe.services.access import Gate
from spe.services.data import DataService
from spe.services.runs import RunService
from tests.helpers import ROOT

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_sweep_purges_only_finished_runs_past_their_projects_retention(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spe.db'}"
    upgrade(url)
    sessions = make_sessions(make_engine(url))
    repo, audit = SqlRunRepository(sessions), SqlAuditLog(sessions)
    data = yaml.safe_load((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    data["projects"][0]["retention_days"] = 30  # proj-a; proj-b keeps runs until purged
    gate = Gate(parse_policy(data))
    stores = StoreFactory()
    quarantine = tmp_path / "quarantine"
    service = DataService(gate=gate, stores=stores, audit=audit,
                          quarantine_location=lambda p: str(quarantine / p),
                          files=LocalJobFiles())
    now = [T0]
    runs = RunService(repo=repo, task_logs=SqlTaskLogRepository(sessions),
                      catalog=load_catalog(ROOT / "workflows")[0],
                      dispatcher=NullDispatcher(), audit=audit,
                      tokens=PageTokens(b"k" * 32), runs_dir=tmp_path / "runs",
                      engine_versions=dict, gate=gate, data=service, files=LocalJobFiles(),
                      clock=lambda: now[0])

    def add(run_id: str, project: str, state: RunState) -> None:
        repo.add(Run(id=run_id, owner_sub="dev|a", owner_name="a", state=state,
                     request=RunRequest("sleepy", "SMK", "9"), workflow_id="sleepy",
                     workflow_version="1.0.0", bundle_digest="sha256:" + "0" * 64,
                     engine="snakemake", engine_options={}, created_at=T0, project=project))
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        (quarantine / project / run_id).mkdir(parents=True)
        (quarantine / project / run_id / "out.csv").write_text("x\n")

    add("old-a", "proj-a", RunState.COMPLETE)
    add("running-a", "proj-a", RunState.RUNNING)
    add("old-b", "proj-b", RunState.COMPLETE)
    now[0] = T0 + timedelta(days=10)
    assert runs.sweep_retention() == ()
    now[0] = T0 + timedelta(days=31)
    assert runs.sweep_retention() == ("old-a",)
    assert not (tmp_path / "runs/old-a").exists()
    assert not (quarantine / "proj-a/old-a/out.csv").exists()
    assert (tmp_path / "runs/running-a").exists() and (tmp_path / "runs/old-b").exists()
    purged = repo.get("old-a")
    assert purged is not None and purged.purged_at == now[0]
    assert purged.state == RunState.COMPLETE
    assert runs.sweep_retention() == ()  # already purged: nothing twice
