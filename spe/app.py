"""The composition root: ``create_app(settings)`` chooses the adapters and wires them into
the services and the API. The only module (with the CLI) that knows every layer."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flask
from connexion import FlaskApp
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from spe.adapters.auth.claims import ClaimsMapper
from spe.adapters.auth.dev_issuer import DevIssuer
from spe.adapters.auth.lslogin import LsLoginVerifier
from spe.adapters.auth.mapped import MappedVerifier
from spe.adapters.auth.oidc import OidcVerifier
from spe.adapters.auth.passports import PassportVerifier
from spe.adapters.queue.inline import InlineDispatcher
from spe.api import context
from spe.api.airlock import AirlockApi
from spe.api.cors import add_cors
from spe.api.errors import (
    on_bad_encoding,
    on_domain_error,
    on_http_error,
    on_multipart_error,
    on_problem,
    on_unexpected,
)
from spe.api.headers import SecurityHeaders
from spe.api.health import Liveness
from spe.api.jsonify import FastJsonifier
from spe.api.limits import BodySizeLimit, JsonDepthLimit
from spe.api.proxy import TrustedProxies
from spe.api.public_info import PublicServiceInfo
from spe.api.security import Authenticator, security_map
from spe.api.spe_ext import SpeApi
from spe.api.tes import TesApi
from spe.api.ui_routes import add_ui_routes
from spe.api.validation import VALIDATORS, quiet_content_type_notice
from spe.api.wes import WesApi
from spe.audit_wiring import audit_anchor
from spe.config import Settings
from spe.core import build_core
from spe.domain.catalog import Catalog
from spe.domain.errors import DomainError
from spe.domain.policy import Policy
from spe.domain.ports import Dispatcher, ExecutorChoice, TokenVerifier
from spe.domain.tes_resources import BACKEND_PARAMETERS
from spe.observability_wiring import add_observability, readiness_view, serve_worker_metrics
from spe.services.audit import AuditQuery
from spe.services.execution import Execution
from spe.services.review_context import ReviewContext
from spe.services.runs import RunService
from spe.services.service_info import ServiceInfo, TesServiceInfo
from spe.workers.background import Background
from spe.workers.worker import Worker

if TYPE_CHECKING:
    from spe.adapters.queue.celery import CeleryDispatcher

log = logging.getLogger("spe")
OPENAPI = Path(__file__).resolve().parent / "openapi"  # package data (pyproject.toml)
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


def auth_instructions(settings: Settings, dev_issuer: DevIssuer | None) -> str:
    if dev_issuer is not None:
        return ("This is the embedded default with a DEVELOPMENT issuer "
                f"({dev_issuer.issuer_url}, loopback only).\n"
                "On this machine, get a token with:\n\n"
                "    export SPE_TOKEN=$(spe dev token --user NAME)\n\n"
                "and send it as 'Authorization: Bearer $SPE_TOKEN'.\n")
    return (f"Tokens are issued by {settings.oidc_issuer} for the audience (client id) "
            f"'{settings.oidc_audience}'.\nSend them as 'Authorization: Bearer <token>'.\n")


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


def add_plain_routes(app: FlaskApp, readyz: Callable[[], Any]) -> None:
    """Health endpoints (``readyz``: ``spe.observability_wiring.readiness_view``), and a
    guard that serves nothing connexion did not route."""
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def only_routed_operations() -> flask.Response | None:
        endpoint = flask.request.endpoint or ""
        if endpoint in ("healthz", "readyz", "metrics") or endpoint.startswith("ui_") \
                or context.routed_by_connexion():
            return None
        return flask.Response(json.dumps({"msg": "no such resource", "status_code": 404}),
                              status=404, content_type="application/json")

    app.app.before_request(only_routed_operations)
    app.add_middleware(Liveness, position=MiddlewarePosition.BEFORE_EXCEPTION)  # fast path
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
    # added first, so outermost: the 413s of BodySizeLimit carry the headers too
    app.add_middleware(SecurityHeaders, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(BodySizeLimit, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       max_bytes=max_request_bytes)
    app.add_middleware(JsonDepthLimit, position=MiddlewarePosition.BEFORE_SWAGGER)


def make_service_info(settings: Settings, catalog: Catalog, policy: Policy,
                      engine_versions: Callable[[], dict[str, str]]) -> ServiceInfo:
    """service-info; ``supported_filesystem_protocols`` are the forms of data references
    the policy's datasets accept (``dataset://``, paths, and ``s3://`` where a dataset
    lives in a bucket)."""
    protocols = ["dataset", "file"]
    if any(d.location.startswith("s3://") for d in policy.datasets.values()):
        protocols.append("s3")
    return ServiceInfo(catalog=catalog, engine_versions=engine_versions,
                       name=settings.service_name,
                       organization_name=settings.organization_name,
                       organization_url=settings.organization_url,
                       auth_instructions_url=settings.auth_instructions_url,
                       started_at=datetime.now(UTC), filesystem_protocols=protocols,
                       contact_url=settings.contact_url,
                       documentation_url=settings.documentation_url,
                       environment=settings.environment)


def make_celery_dispatcher(settings: Settings) -> CeleryDispatcher:
    # imported here: celery is an optional extra the embedded default does without
    from spe.adapters.queue.celery import (  # noqa: PLC0415
        BrokerOptions,
        CeleryDispatcher,
        make_celery,
    )

    timeout = settings.celery_broker_timeout_seconds
    app = make_celery(BrokerOptions(settings.redis_url,
                                    settings.celery_visibility_timeout_seconds, timeout,
                                    str(settings.redis_ca_file or "")))
    return CeleryDispatcher(app, timeout)


def make_dispatcher(settings: Settings,
                    inline: InlineDispatcher) -> tuple[Dispatcher, Callable[[], bool]]:
    """The dispatcher, and the check a submission makes before its run is stored."""
    if settings.dispatcher == "celery":
        celery = make_celery_dispatcher(settings)
        return celery, celery.ready
    return inline, lambda: True


@dataclass
class WorkerProcess:
    """A `spe worker` process: the worker, fed by Celery messages."""

    worker: Worker
    consume: Callable[[int, str], int]

    def run(self, concurrency: int, loglevel: str = "INFO") -> int:
        self.worker.start()
        try:
            return self.consume(concurrency, loglevel)
        finally:
            self.worker.stop()


def create_worker(settings: Settings) -> WorkerProcess:
    """The `spe worker` process: the core (``build_core``), fed by Celery messages and by
    its own reconciler. The database must already be migrated."""
    if settings.dispatcher != "celery":
        raise ValueError("`spe worker` needs SPE_DISPATCHER=celery (with the inline "
                         "dispatcher the workers run inside `spe serve`)")
    from spe.adapters.queue.celery import consume  # noqa: PLC0415 - optional extra

    core = build_core(settings)
    dispatcher = make_celery_dispatcher(settings)
    worker = Worker(core.execution, dispatcher, settings.reconcile_seconds)
    runs = core.run_service(dispatcher, dispatcher.ready)
    worker.reconciler.schedule(runs.sweep_retention, settings.retention_sweep_seconds)
    worker.reconciler.schedule(core.airlock().work.carry_on)
    worker.reconciler.schedule(audit_anchor(settings, core.stores, core.sessions).checkpoint,
                               settings.audit_checkpoint_seconds, at_stop=True)
    serve_worker_metrics(settings, worker.reconciler)
    return WorkerProcess(worker, lambda threads, level: consume(
        dispatcher.app, worker.handle, threads, level))


def create_app(settings: Settings, *, migrate: bool = True,
               dispatcher_factory: Any = None, choice: ExecutorChoice | None = None) -> Service:
    """The API process. ``choice`` replaces the executor the settings name (tests)."""
    settings.check_for_serving()
    core = build_core(settings, migrate=migrate, choice=choice)
    worker: Worker
    inline = InlineDispatcher(lambda kind, run_id: worker.handle(kind, run_id),  # noqa: PLW0108 - worker is built next
                              settings.workers)
    dispatcher, queue_ready = (dispatcher_factory(), lambda: True) if dispatcher_factory \
        else make_dispatcher(settings, inline)
    worker = Worker(core.execution, dispatcher, settings.reconcile_seconds)
    verifier, dev_issuer = make_verifier(settings, core.policy)
    authenticate = Authenticator(verifier, core.audit,
                                 settings.unauthenticated_requests_per_minute)
    runs = core.run_service(dispatcher, queue_ready)
    worker.reconciler.schedule(runs.sweep_retention, settings.retention_sweep_seconds)
    airlock = core.airlock()
    background = Background()  # an approval nudges the release; the reconciler carries on
    airlock.review.on_approved = lambda request_id: background.submit(
        partial(airlock.outbox.release, request_id))
    worker.reconciler.schedule(airlock.work.carry_on)
    anchor = audit_anchor(settings, core.stores, core.sessions)
    worker.reconciler.schedule(anchor.checkpoint, settings.audit_checkpoint_seconds)
    info = make_service_info(settings, core.catalog, core.policy, core.engine_versions)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if dev_issuer is not None:
            dev_issuer.start()
        if dispatcher is inline:
            core.execution.recover(inline)
            worker.start()
        yield
        worker.stop()
        background.shutdown()
        inline.shutdown(wait=False)
        authenticate.flush()
        anchor.checkpoint_quietly()  # last: after the final events of this process
        if dev_issuer is not None:
            dev_issuer.stop()

    quiet_content_type_notice()
    app = FlaskApp(__name__, specification_dir=str(OPENAPI), lifespan=lifespan,
                   security_map=security_map(authenticate), jsonifier=FastJsonifier(),
                   swagger_ui_options=SwaggerUIOptions(swagger_ui=settings.swagger_ui_enabled),
                   validator_map=VALIDATORS)
    audit_query = AuditQuery(store=core.audit, gate=core.gate, tokens=runs.tokens,
                             log=core.audit)
    app.add_api("wes.yaml", resolver=_resolver(WesApi(runs, info, authenticate,
                                                      settings.public_url)))
    app.add_api("tes.yaml", resolver=_resolver(TesApi(core.task_service(runs), TesServiceInfo(
        settings.service_name, settings.organization_name, settings.organization_url,
        info.started_at, BACKEND_PARAMETERS, settings.contact_url,
        settings.documentation_url, settings.environment))))
    spe_api = SpeApi(runs, core.catalog, settings.log_max_bytes,
                     auth_instructions(settings, dev_issuer), audit_query=audit_query)
    reviewing = ReviewContext(airlock.review.requests, core.repo, core.catalog,
                              airlock.review.zones)
    app.add_api("spe.yaml", resolver=_resolver(
        AirlockApi(airlock.review, airlock.outbox, reviewing), spe_api))
    # outermost: every later layer sees the client and scheme the trusted proxy reported
    app.add_middleware(TrustedProxies, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       trusted=settings.trusted_proxies)
    http = add_observability(app, settings, core,
                             worker.reconciler if dispatcher is inline else None)
    authenticate.on_failure = http.auth_failed
    add_error_handling(app, settings.max_request_bytes)
    add_cors(app, settings.cors_allowed_origins)
    add_plain_routes(app, readiness_view(settings, core, queue_ready))
    jsonifier = FastJsonifier()  # the operation's own encoder: the same bytes
    app.add_middleware(PublicServiceInfo, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       render=lambda base: jsonifier.dumps(info.describe(
                           runs.state_counts(None), (settings.public_url or base).rstrip("/")))
                       .encode())
    add_ui_routes(app, issuer=dev_issuer.issuer_url if dev_issuer else settings.oidc_issuer,
                  client_id=settings.ui_client_id or settings.oidc_audience,
                  scope="openid profile email eduperson_entitlement")
    return Service(app=app, settings=settings, runs=runs, execution=core.execution,
                   worker=worker, dispatcher=inline, dev_issuer=dev_issuer)
