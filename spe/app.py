"""The composition root: ``create_app(settings)`` chooses the adapters and wires them into
the services and the API. The only module (with the CLI) that knows every layer."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flask
from connexion import FlaskApp
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from spe.adapters.auth.claims import ClaimsMapper
from spe.adapters.auth.dev_issuer import DevIssuer
from spe.adapters.auth.lslogin import LsLoginVerifier
from spe.adapters.auth.mapped import MappedVerifier
from spe.adapters.auth.oidc import OidcVerifier
from spe.adapters.auth.passports import PassportVerifier
from spe.adapters.catalog import load_catalog
from spe.adapters.db.releases import SqlReleaseRepository
from spe.adapters.db.repository import SqlAuditLog, SqlRunRepository
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.engines.nextflow import NextflowEngine
from spe.adapters.engines.snakemake import SnakemakeEngine
from spe.adapters.policy import dev_policy, load_policy
from spe.adapters.queue.inline import InlineDispatcher
from spe.adapters.storage.factory import S3Settings, StoreFactory
from spe.api import context
from spe.api.airlock import AirlockApi
from spe.api.errors import (
    on_bad_encoding,
    on_domain_error,
    on_http_error,
    on_multipart_error,
    on_problem,
    on_unexpected,
)
from spe.api.limits import BodySizeLimit
from spe.api.security import Authenticator, security_map
from spe.api.spe_ext import SpeApi
from spe.api.ui_routes import add_ui_routes
from spe.api.wes import WesApi
from spe.config import Settings
from spe.domain.catalog import Catalog
from spe.domain.errors import DomainError
from spe.domain.paging import PageTokens
from spe.domain.policy import Policy
from spe.domain.ports import Dispatcher, TokenVerifier, WorkflowEngine
from spe.execution_wiring import execution_preflight, executor_wiring
from spe.services.access import Gate
from spe.services.airlock import ReleaseRequests, Zones
from spe.services.audit import AuditQuery
from spe.services.data import DataService
from spe.services.execution import Execution
from spe.services.outbox import Outbox
from spe.services.release_work import ReleaseWork
from spe.services.review import Review
from spe.services.runs import RunService
from spe.services.service_info import ServiceInfo
from spe.services.submission import Limits
from spe.workers.inline import Background, Worker

if TYPE_CHECKING:
    from spe.adapters.queue.celery import CeleryDispatcher
    from spe.workers.celery_worker import CeleryWorker

log = logging.getLogger("spe")
OPENAPI = Path(__file__).resolve().parent.parent / "openapi"
FORM_FIELD_MAX_BYTES = 2**20  # largest text field of a multipart form (workflow_params)


@dataclass
class Service:
    """Everything ``create_app`` built, so callers can start and stop it."""

    app: FlaskApp
    settings: Settings
    runs: RunService
    execution: Execution
    worker: Worker
    dispatcher: InlineDispatcher
    dev_issuer: DevIssuer | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def default_engine_parameters(catalog: Catalog) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for entry in catalog.entries():
        for opt in entry.engine_options:
            seen.setdefault(f"{entry.engine}:{opt.name}", {
                "name": opt.name, "type": opt.type,
                "default_value": json.dumps(opt.default) if isinstance(opt.default, bool)
                else str(opt.default)})
    return [seen[k] for k in sorted(seen)]


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


def auth_instructions(settings: Settings, dev_issuer: DevIssuer | None) -> str:
    if dev_issuer is not None:
        return ("This is the embedded default with a DEVELOPMENT issuer "
                f"({dev_issuer.issuer_url}, loopback only).\n"
                "On this machine, get a token with:\n\n"
                "    export SPE_TOKEN=$(spe dev token --user NAME)\n\n"
                "and send it as 'Authorization: Bearer $SPE_TOKEN'.\n")
    return (f"Tokens are issued by {settings.oidc_issuer} for the audience (client id) "
            f"'{settings.oidc_audience}'.\nSend them as 'Authorization: Bearer <token>'.\n")


def make_stores(settings: Settings) -> StoreFactory:
    s3 = None
    if settings.s3_access_key and settings.s3_secret_key is not None:
        s3 = S3Settings(settings.s3_endpoint_url, settings.s3_access_key,
                        settings.s3_secret_key.get_secret_value(), settings.s3_region,
                        settings.s3_sse, settings.s3_sse_kms_key_id)
    return StoreFactory(secret=settings.page_secret(), s3=s3)


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


def make_verifier(settings: Settings, policy: Policy) -> tuple[TokenVerifier, DevIssuer | None]:
    passports = PassportVerifier(policy.visa_issuers,
                                 max_age_seconds=policy.visa_max_age_seconds)
    dev_issuer = None
    issuer = settings.oidc_issuer
    if settings.auth_mode == "dev":
        dev_issuer = DevIssuer(settings.home, port=settings.dev_issuer_port)
        issuer = dev_issuer.issuer_url
        log.warning("!" * 72 + "\nDEVELOPMENT ISSUER ENABLED at %s: anyone on this machine "
                    "can mint tokens with `spe dev token`. Never use it in production.\n"
                    + "!" * 72, issuer)
    mapper = ClaimsMapper(issuer, policy.trusted_authorities, passports)
    if dev_issuer is not None:
        oidc = OidcVerifier(issuer, settings.oidc_audience,
                            algorithms=settings.oidc_algorithms,
                            leeway_seconds=settings.jwt_leeway_seconds,
                            min_refresh_interval=settings.jwks_min_refresh_seconds)
        return MappedVerifier(oidc.claims, mapper.principal), dev_issuer
    secret = settings.oidc_client_secret
    return LsLoginVerifier(
        issuer, settings.oidc_audience, mapper=mapper.principal,
        client_id=settings.oidc_client_id or settings.oidc_audience,
        client_secret=secret.get_secret_value() if secret else "",
        introspection_ttl=settings.oidc_introspection_ttl_seconds,
        userinfo_ttl=settings.oidc_userinfo_ttl_seconds,
        http_timeout=settings.oidc_http_timeout_seconds,
        algorithms=settings.oidc_algorithms, leeway_seconds=settings.jwt_leeway_seconds,
        min_refresh_interval=settings.jwks_min_refresh_seconds), None


def _resolver(*controllers: object) -> Resolver:
    """operationId -> the method of that name on the first controller that has one."""

    def resolve(op_id: str) -> Any:
        name = op_id.rsplit(".", maxsplit=1)[-1]
        return next(getattr(c, name) for c in controllers if hasattr(c, name))

    return Resolver(function_resolver=resolve)


def add_plain_routes(app: FlaskApp, db: Engine) -> None:
    """Health endpoints, and a guard that serves nothing connexion did not route."""
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def readyz() -> tuple[dict[str, str], int]:
        try:
            with db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means not ready
            return {"status": "unavailable", "reason": type(exc).__name__}, 503
        return {"status": "ready"}, 200

    def only_routed_operations() -> flask.Response | None:
        endpoint = flask.request.endpoint or ""
        if endpoint in ("healthz", "readyz") or endpoint.startswith("ui_") \
                or context.routed_by_connexion():
            return None
        return flask.Response(json.dumps({"msg": "no such resource", "status_code": 404}),
                              status=404, content_type="application/json")

    app.app.before_request(only_routed_operations)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)


def add_error_handling(app: FlaskApp, max_request_bytes: int) -> None:
    """Every error becomes a GA4GH ErrorResponse; bodies over the limit are 413."""
    app.app.config["MAX_CONTENT_LENGTH"] = max_request_bytes
    app.app.config["MAX_FORM_MEMORY_SIZE"] = FORM_FIELD_MAX_BYTES
    app.add_error_handler(DomainError, on_domain_error)
    app.add_error_handler(ProblemException, on_problem)
    app.add_error_handler(HTTPException, on_http_error)
    app.add_error_handler(MultiPartException, on_multipart_error)
    app.add_error_handler(UnicodeDecodeError, on_bad_encoding)
    app.add_error_handler(Exception, on_unexpected)
    app.add_middleware(BodySizeLimit, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       max_bytes=max_request_bytes)


def make_service_info(settings: Settings, catalog: Catalog,
                      engine_versions: Callable[[], dict[str, str]]) -> ServiceInfo:
    return ServiceInfo(catalog=catalog, engine_versions=engine_versions,
                       name=settings.service_name,
                       organization_name=settings.organization_name,
                       organization_url=settings.organization_url,
                       auth_instructions_url=settings.auth_instructions_url,
                       started_at=datetime.now(UTC),
                       default_engine_parameters=default_engine_parameters(catalog))


def make_engines(settings: Settings) -> dict[str, WorkflowEngine]:
    return {"snakemake": SnakemakeEngine(settings.snakemake_bin),
            "nextflow": NextflowEngine(settings.nextflow_bin)}


def make_data(settings: Settings, policy: Policy, gate: Gate, stores: StoreFactory,
              audit: SqlAuditLog) -> DataService:
    quarantine = zone_locations(settings.quarantine_dir or settings.home / "quarantine",
                                "quarantine", policy)
    return DataService(gate=gate, stores=stores, audit=audit, quarantine_location=quarantine)


@dataclass
class Airlock:
    """The airlock's services: review, outbox, and the reconciler's ``work``."""

    review: Review
    outbox: Outbox
    work: ReleaseWork


def make_airlock(settings: Settings, policy: Policy, *, sessions: sessionmaker[Session],
                 repo: SqlRunRepository, catalog: Catalog, gate: Gate, data: DataService,
                 audit: SqlAuditLog) -> Airlock:
    """Built by the API and by every `spe worker` (whose reconcilers carry the airlock
    on)."""
    requests = ReleaseRequests(releases=SqlReleaseRepository(sessions), gate=gate,
                               audit_log=audit, claim_seconds=settings.release_claim_seconds,
                               retry_seconds=settings.release_retry_seconds)
    zones = Zones(stores=data.stores, quarantine_location=data.quarantine_location,
                  outbox_location=zone_locations(settings.outbox_dir or settings.home / "outbox",
                                                 "outbox", policy))
    outbox = Outbox(requests=requests, runs=repo, catalog=catalog, zones=zones)
    review = Review(requests=requests, runs=repo, zones=zones,
                    tokens=PageTokens(settings.page_secret()))
    return Airlock(review=review, outbox=outbox,
                   work=ReleaseWork(requests=requests, review=review, outbox=outbox))


def make_execution(settings: Settings, policy: Policy, *, repo: SqlRunRepository,
                   catalog: Catalog, bundles: dict[str, Path],
                   engines: dict[str, WorkflowEngine], data: DataService) -> Execution:
    """The one place an Execution is built: by the API (inline dispatcher) and by every
    `spe worker` (Celery), with the executor ``executor_wiring`` chooses."""
    return Execution(repo=repo, catalog=catalog, bundles=bundles, engines=engines,
                     runs_dir=settings.runs_dir, max_active=settings.max_active_runs,
                     data=data, start_lease_seconds=settings.start_lease_seconds,
                     finish_claim_seconds=settings.finish_claim_seconds,
                     **executor_wiring(settings, policy))


def make_celery_dispatcher(settings: Settings) -> CeleryDispatcher:
    # imported here: celery is an optional extra the embedded default does without
    from spe.adapters.queue.celery import (  # noqa: PLC0415
        BrokerOptions,
        CeleryDispatcher,
        make_celery,
    )

    timeout = settings.celery_broker_timeout_seconds
    app = make_celery(BrokerOptions(settings.redis_url,
                                    settings.celery_visibility_timeout_seconds, timeout))
    return CeleryDispatcher(app, timeout)


def make_dispatcher(settings: Settings,
                    inline: InlineDispatcher) -> tuple[Dispatcher, Callable[[], bool]]:
    """The dispatcher, and the check a submission makes before its run is stored."""
    if settings.dispatcher == "celery":
        celery = make_celery_dispatcher(settings)
        return celery, celery.ready
    return inline, lambda: True


def create_worker(settings: Settings) -> CeleryWorker:
    """The `spe worker` process: the API's Execution (``make_execution``), fed by Celery
    messages and by its own reconciler. The database must already be migrated."""
    if settings.dispatcher != "celery":
        raise ValueError("`spe worker` needs SPE_DISPATCHER=celery (with the inline "
                         "dispatcher the workers run inside `spe serve`)")
    from spe.workers.celery_worker import CeleryWorker  # noqa: PLC0415 - optional extra

    sessions = make_sessions(make_engine(settings.db_url))
    repo, audit = SqlRunRepository(sessions), SqlAuditLog(sessions)
    catalog, bundles = load_catalog(settings.catalog_dir)
    engines = make_engines(settings)
    check_engine_options(catalog, engines)
    policy = make_policy(settings)
    gate = Gate(policy)
    data = make_data(settings, policy, gate, make_stores(settings), audit)
    execution = make_execution(settings, policy, repo=repo, catalog=catalog,
                               bundles=bundles, engines=engines, data=data)
    dispatcher = make_celery_dispatcher(settings)
    worker = CeleryWorker.build(dispatcher.app, execution, dispatcher,
                                settings.reconcile_seconds)
    airlock = make_airlock(settings, policy, sessions=sessions, repo=repo, catalog=catalog,
                           gate=gate, data=data, audit=audit)
    worker.reconciler.each_round(airlock.work.carry_on)
    runs = RunService(repo=repo, catalog=catalog, dispatcher=dispatcher, audit=audit,
                      tokens=PageTokens(settings.page_secret()), runs_dir=settings.runs_dir,
                      engine_versions=dict, gate=gate, data=data)
    worker.reconciler.schedule_sweep(runs.sweep_retention, settings.retention_sweep_seconds)
    return worker


def create_app(settings: Settings, *, migrate: bool = True,
               dispatcher_factory: Any = None) -> Service:
    settings.check_for_serving()
    settings.home.mkdir(parents=True, exist_ok=True)
    if migrate:
        upgrade(settings.db_url)
    db = make_engine(settings.db_url)
    sessions = make_sessions(db)
    repo, audit = SqlRunRepository(sessions), SqlAuditLog(sessions)
    catalog, bundles = load_catalog(settings.catalog_dir)
    engines = make_engines(settings)

    check_engine_options(catalog, engines)

    def engine_versions() -> dict[str, str]:
        return {name: engine.version() for name, engine in engines.items()}

    policy = make_policy(settings)
    gate = Gate(policy)
    stores = make_stores(settings)
    data = make_data(settings, policy, gate, stores, audit)
    execution = make_execution(settings, policy, repo=repo, catalog=catalog,
                               bundles=bundles, engines=engines, data=data)
    worker = Worker(execution, settings.reconcile_seconds)
    inline = InlineDispatcher(worker.handle, settings.workers)
    dispatcher, queue_ready = (dispatcher_factory(), lambda: True) if dispatcher_factory \
        else make_dispatcher(settings, inline)
    verifier, dev_issuer = make_verifier(settings, policy)
    authenticate = Authenticator(verifier, audit)
    runs = RunService(repo=repo, catalog=catalog, dispatcher=dispatcher, audit=audit,
                      tokens=PageTokens(settings.page_secret()), runs_dir=settings.runs_dir,
                      engine_versions=engine_versions, gate=gate, data=data,
                      limits=Limits(settings.max_attachment_bytes, settings.max_attachments),
                      queue_ready=queue_ready, can_execute=execution_preflight(settings, policy),
                      key_window=timedelta(hours=settings.idempotency_window_hours))
    worker.schedule_sweep(runs.sweep_retention, settings.retention_sweep_seconds)
    airlock = make_airlock(settings, policy, sessions=sessions, repo=repo, catalog=catalog,
                           gate=gate, data=data, audit=audit)
    background = Background()  # an approval nudges the release; the reconciler carries on
    airlock.review.on_approved = lambda request_id: background.submit(
        partial(airlock.outbox.release, request_id))
    worker.each_round(airlock.work.carry_on)
    info = make_service_info(settings, catalog, engine_versions)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if dev_issuer is not None:
            dev_issuer.start()
        if dispatcher is inline:
            execution.recover(inline)
            worker.start_reconciler()
        yield
        worker.stop()
        background.shutdown()
        inline.shutdown(wait=False)
        if dev_issuer is not None:
            dev_issuer.stop()

    app = FlaskApp(__name__, specification_dir=str(OPENAPI), lifespan=lifespan,
                   security_map=security_map(authenticate))
    audit_query = AuditQuery(store=audit, gate=gate, tokens=runs.tokens, log=audit)
    app.add_api("wes.yaml", resolver=_resolver(WesApi(runs, info, authenticate,
                                                      settings.public_url)))
    spe_api = SpeApi(runs, catalog, settings.log_max_bytes,
                     auth_instructions(settings, dev_issuer), audit_query=audit_query)
    app.add_api("spe.yaml", resolver=_resolver(AirlockApi(airlock.review, airlock.outbox),
                                               spe_api))
    add_error_handling(app, settings.max_request_bytes)
    add_plain_routes(app, db)
    add_ui_routes(app, issuer=dev_issuer.issuer_url if dev_issuer else settings.oidc_issuer,
                  client_id=settings.oidc_audience,
                  scope="openid profile email eduperson_entitlement")
    return Service(app=app, settings=settings, runs=runs, execution=execution, worker=worker,
                   dispatcher=inline, dev_issuer=dev_issuer)
