"""The core of the composition root: ``build_core(settings)`` chooses the adapters (by name,
from ``spe.registry``) and builds the services that every process needs. ``spe serve``
(``spe.app.create_app``) adds the API edge and its dispatcher; ``spe worker``
(``spe.app.create_worker``) adds the Celery consumer; tests build the same core."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from spe import registry
from spe.adapters.catalog import load_catalog
from spe.adapters.db.lifecycle import LoggedReleaseRepository, LoggedRunRepository
from spe.adapters.db.repository import SqlAuditLog, SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.task_logs import SqlTaskLogRepository
from spe.adapters.jobfiles import LocalJobFiles
from spe.adapters.policy import dev_policy, load_policy
from spe.adapters.rocrate_writer import RoCrateWriter
from spe.adapters.storage.factory import S3Settings, StoreFactory
from spe.config import Settings
from spe.domain.catalog import Catalog
from spe.domain.paging import PageTokens
from spe.domain.policy import Policy
from spe.domain.ports import Dispatcher, ExecutorChoice, ObjectStore, WorkflowEngine
from spe.execution_wiring import execution_preflight, task_jobs
from spe.services.access import Gate
from spe.services.airlock import ReleaseRequests, Zones
from spe.services.data import DataService
from spe.services.execution import Execution, Tuning
from spe.services.outbox import Outbox
from spe.services.release_work import ReleaseWork
from spe.services.review import Review
from spe.services.runs import Admission, RunService
from spe.services.submission import Limits
from spe.services.tasks import TaskService

log = logging.getLogger("spe")


@dataclass
class Core:
    """What every process of the service shares: the database, the catalog, the policy,
    the stores, and the execution service built on them."""

    settings: Settings
    db: Engine
    sessions: sessionmaker[Session]
    repo: SqlRunRepository
    task_logs: SqlTaskLogRepository
    audit: SqlAuditLog
    catalog: Catalog
    engines: dict[str, WorkflowEngine]
    policy: Policy
    gate: Gate
    stores: StoreFactory
    data: DataService
    execution: Execution

    def engine_versions(self) -> dict[str, str]:
        return {name: engine.version() for name, engine in self.engines.items()}

    def run_service(self, dispatcher: Dispatcher,
                    queue_ready: Callable[[], bool]) -> RunService:
        s = self.settings
        return RunService(
            repo=self.repo, task_logs=self.task_logs, catalog=self.catalog,
            dispatcher=dispatcher, audit=self.audit,
            tokens=PageTokens(s.page_secret()), runs_dir=s.runs_dir,
            engine_versions=self.engine_versions, gate=self.gate, data=self.data,
            files=self.execution.files,
            admission=Admission(Limits(s.max_attachment_bytes, s.max_attachments),
                                execution_preflight(s, self.policy), queue_ready,
                                timedelta(hours=s.idempotency_window_hours)))

    def task_service(self, runs: RunService) -> TaskService:
        """TES tasks, on the run service's repository, rules and dispatcher."""
        if self.execution.tasks is None:
            raise RuntimeError("this core runs no TES tasks")
        return TaskService(runs=runs, jobs=self.execution.tasks)

    def airlock(self) -> Airlock:
        """The airlock's services; every process builds them (a worker's reconciler carries
        the airlock's pending steps on)."""
        s = self.settings
        requests = ReleaseRequests(releases=LoggedReleaseRepository(self.sessions),
                                   gate=self.gate, audit_log=self.audit,
                                   claim_seconds=s.release_claim_seconds,
                                   retry_seconds=s.release_retry_seconds)
        zones = Zones(stores=self.stores, quarantine_location=self.data.quarantine_location,
                      outbox_location=zone_locations(s.outbox_dir or s.home / "outbox",
                                                     "outbox", self.policy))
        outbox = Outbox(requests=requests, runs=self.repo, catalog=self.catalog, zones=zones,
                        crates=RoCrateWriter())
        review = Review(requests=requests, runs=self.repo, zones=zones,
                        tokens=PageTokens(s.page_secret()),
                        max_open=s.max_open_release_requests)
        return Airlock(review=review, outbox=outbox,
                       work=ReleaseWork(requests=requests, review=review, outbox=outbox))


@dataclass
class Airlock:
    """The airlock's services: review, outbox, and the reconciler's ``work``."""

    review: Review
    outbox: Outbox
    work: ReleaseWork


def build_core(settings: Settings, *, migrate: bool = False,
               choice: ExecutorChoice | None = None) -> Core:
    """The core for ``settings``; ``migrate`` first upgrades the database (``spe serve``
    does; workers expect it done). ``choice`` replaces the executor the settings name."""
    settings.home.mkdir(parents=True, exist_ok=True)
    if migrate:
        upgrade(settings.db_url)
    db = make_engine(settings.db_url)
    sessions = make_sessions(db)
    repo, audit = LoggedRunRepository(sessions), SqlAuditLog(sessions)
    task_logs = SqlTaskLogRepository(sessions)
    catalog, bundles = load_catalog(settings.catalog_root())
    engines = make_engines(settings)
    check_engine_options(catalog, engines)
    policy = make_policy(settings)
    gate, stores, files = Gate(policy), make_stores(settings), LocalJobFiles()
    quarantine = zone_locations(settings.quarantine_dir or settings.home / "quarantine",
                                "quarantine", policy)
    data = DataService(gate=gate, stores=stores, audit=audit, quarantine_location=quarantine,
                       files=files)
    execution = Execution(
        repo=repo, task_logs=task_logs, catalog=catalog, bundles=bundles, engines=engines,
        choice=choice or make_executor(settings, policy), runs_dir=settings.runs_dir,
        data=data, files=files, audit=audit,
        tuning=Tuning(settings.max_active_runs, settings.start_lease_seconds,
                      settings.finish_claim_seconds),
        tasks=task_jobs(settings, data, audit))
    return Core(settings=settings, db=db, sessions=sessions, repo=repo, task_logs=task_logs,
                audit=audit,
                catalog=catalog, engines=engines, policy=policy, gate=gate, stores=stores,
                data=data, execution=execution)


def make_executor(settings: Settings, policy: Policy) -> ExecutorChoice:
    """The executor named by ``settings.executor``, from the registry."""
    choice = registry.load(registry.EXECUTORS, settings.executor)(settings, policy)
    if not isinstance(choice, ExecutorChoice):
        raise TypeError(f"executor {settings.executor!r} did not give an ExecutorChoice")
    return choice


def make_engines(settings: Settings) -> dict[str, WorkflowEngine]:
    """Every installed engine, by name (a catalog entry's ``workflow_engine``)."""
    return {name: registry.load(registry.ENGINES, name)(settings)
            for name in registry.names(registry.ENGINES)}


def check_engine_options(catalog: Catalog, engines: dict[str, WorkflowEngine]) -> None:
    """Every catalog entry names an engine we have and only options that engine reads."""
    for entry in catalog.entries():
        engine = engines.get(entry.engine)
        if engine is None:
            raise ValueError(f"{entry.ref}: unknown engine {entry.engine!r}")
        unknown = {o.name for o in entry.engine_options} - engine.supported_options
        if unknown:
            raise ValueError(f"{entry.ref}: engine options {sorted(unknown)} are not read "
                             f"by the {entry.engine} adapter")


def make_stores(settings: Settings) -> StoreFactory:
    s3 = None
    if settings.s3_access_key and settings.s3_secret_key is not None:
        s3 = S3Settings(settings.s3_endpoint_url, settings.s3_access_key,
                        settings.s3_secret_key.get_secret_value(), settings.s3_region,
                        settings.s3_sse, settings.s3_sse_kms_key_id,
                        str(settings.s3_ca_file or ""))
    plugins = {scheme: _store_opener(scheme, settings)
               for scheme in registry.names(registry.STORES)}
    return StoreFactory(s3=s3, plugins=plugins)


def _store_opener(scheme: str, settings: Settings) -> Callable[[str], ObjectStore]:
    factory = registry.load(registry.STORES, scheme)

    def open_store(location: str) -> ObjectStore:
        return cast(ObjectStore, factory(location, settings))  # the plugin's contract

    return open_store


def zone_locations(root: Path, zone: str, policy: Policy) -> Callable[[str], str]:
    """Where a project's ``zone`` (quarantine, outbox) is: its ``storage.<zone>``, else a
    folder of the default root (created on first use)."""

    def location(project: str) -> str:
        configured = policy.projects[project].storage.get(zone) \
            if project in policy.projects else None
        if configured:
            return configured
        path = root / (project or "_unassigned")
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    return location


def make_policy(settings: Settings) -> Policy:
    if settings.policy_file is not None:
        return load_policy(settings.policy_file)
    return dev_policy()
