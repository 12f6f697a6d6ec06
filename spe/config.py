"""One typed Settings object: environment variables prefixed ``SPE_``, optionally a YAML
file named by ``SPE_CONFIG``; validated at start-up and passed explicitly."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from spe.config_tls import check_transport_security, verified_database_url

# the demo catalog of a source checkout; a wheel installs no catalog (set catalog_dir)
_REPO_CATALOG = Path(__file__).resolve().parent.parent / "workflows"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_home() -> Path:
    return Path.home() / ".spe"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPE_", extra="forbid")

    home: Path = Field(default_factory=_default_home,
                       description="All state of the embedded default lives here (SPE_HOME).")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in SPE_HOME.")
    catalog_dir: Path | None = Field(
        None, description="The workflow allowlist folder (SPE_CATALOG_DIR); required with "
        "auth_mode=oidc and in an installed package. Unset with auth_mode=dev in a source "
        "checkout: the checkout's demo catalog (workflows/).")
    host: str = Field("127.0.0.1", description="Address `spe serve` binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Port `spe serve` binds to.")
    public_url: str = Field("", description="External base URL, used in log links.")
    trusted_proxies: tuple[str, ...] = Field(
        (), description="Addresses or networks (CIDR) of the reverse proxies in front of "
        "the service (JSON list, e.g. '[\"127.0.0.1\"]'). Only a request arriving from "
        "one of them may set the client address and scheme (X-Forwarded-For, "
        "X-Forwarded-Proto); from anyone else those headers are dropped. Empty: none.")
    tls_cert_file: Path | None = Field(
        None, description="`spe serve` speaks HTTPS itself (small sites without a proxy): "
        "the certificate chain, PEM. Needs tls_key_file.")
    tls_key_file: Path | None = Field(None, description="The private key of tls_cert_file, "
                                      "PEM (mode 0600).")
    database_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) PostgreSQL's certificate must chain to; set, "
        "every connection uses sslmode=verify-full (encrypted, certificate and host name "
        "verified).")
    redis_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) Redis's certificate must chain to; needs a "
        "rediss:// redis_url. A rediss:// URL always verifies the certificate and host "
        "name; without this file, against the system's CAs.")
    s3_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) the https S3 endpoint's certificate must chain "
        "to; empty: boto3's default (AWS_CA_BUNDLE, else the CAs it ships).")

    auth_mode: Literal["dev", "oidc"] = Field(
        "dev", description="'dev': built-in development issuer on loopback (embedded "
        "default only). 'oidc': an external issuer (oidc_issuer).")
    oidc_issuer: str = Field("", description="Issuer URL, pinned (auth_mode=oidc).")
    oidc_audience: str = Field("spe", description="Audience (client id) tokens must carry.")
    oidc_client_id: str = Field("", description="Client id for token introspection; "
                                "empty: the audience.")
    ui_client_id: str = Field("", description="Public OIDC client (authorization code + "
                              "PKCE, redirect URI <public URL>/spe/ui/) of the reviewer "
                              "page; empty: the audience.")
    oidc_client_secret: SecretStr | None = Field(
        None, description="Client secret for token introspection (opaque tokens).")
    oidc_introspection_ttl_seconds: float = Field(60.0, ge=0, description="How long an "
                                                  "introspection answer is reused.")
    oidc_userinfo_ttl_seconds: float = Field(300.0, ge=0, description="How long userinfo "
                                             "(entitlements, passports) is reused.")
    oidc_http_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of every call "
                                             "to the identity provider.")
    policy_file: Path | None = Field(
        None, description="The policy (projects, roles, datasets); required with "
        "auth_mode=oidc. The embedded default uses a built-in one-project policy.")
    oidc_algorithms: tuple[str, ...] = Field(("RS256", "ES256"),
                                             description="Allowed JWT algorithms.")
    jwt_leeway_seconds: int = Field(30, ge=0, le=300, description="Clock skew for exp/nbf.")
    jwks_min_refresh_seconds: float = Field(30.0, ge=0, description="Rate limit of refreshes.")
    dev_issuer_port: int = Field(0, ge=0, le=65535,
                                 description="Port of the dev issuer (0: pick and remember).")

    max_request_bytes: int = Field(64 * 2**20, gt=0, description="Largest request body.")
    max_attachment_bytes: int = Field(8 * 2**20, gt=0, description="Largest attachment.")
    max_attachments: int = Field(200, gt=0, description="Most attachments per run.")
    unauthenticated_requests_per_minute: int = Field(
        300, ge=1, description="Failed authentications one client address may make per "
        "minute; beyond, 429 with Retry-After until the minute ends.")
    max_open_release_requests: int = Field(
        20, ge=1, description="Open release requests (submitted, checking, in review or "
        "returned) one requester may have in one project; beyond, 409.")
    log_max_bytes: int = Field(2**20, gt=0, description="Cap on engine log bytes returned.")

    workers: int = Field(2, ge=1, le=64,
                         description="Threads of the in-process worker (start/cancel steps).")
    max_active_runs: int = Field(4, ge=1, le=1000,
                                 description="Runs executing at once; more wait in QUEUED.")
    reconcile_seconds: float = Field(1.0, gt=0, description="Reconciler poll interval.")
    retention_sweep_seconds: float = Field(3600.0, gt=0, description="How often finished "
                                           "runs past their project's retention are purged.")
    cancel_grace_seconds: float = Field(10.0, ge=0, description="SIGTERM to SIGKILL delay.")
    idempotency_window_hours: float = Field(
        24.0, gt=0, le=24 * 30, description="How long an Idempotency-Key of POST /runs "
        "names the run it made (a retry within it returns that run).")
    finish_claim_seconds: float = Field(
        900.0, gt=0, description="How long one worker may take to copy a finished run's "
        "outputs into quarantine before another worker takes the finish over.")
    release_claim_seconds: float = Field(
        900.0, gt=0, description="How long one worker may take for an airlock step (the "
        "checks, or copying an approved request to the outbox) before a reconciler takes "
        "the step over.")
    release_retry_seconds: float = Field(
        60.0, gt=0, description="How long an airlock step that failed (e.g. the outbox "
        "was unavailable) waits before a reconciler tries it again.")

    quarantine_dir: Path | None = Field(None, description="Default quarantine root "
                                        "(one folder per project); empty: SPE_HOME/quarantine.")
    outbox_dir: Path | None = Field(None, description="Default outbox root (one folder per "
                                    "project); empty: SPE_HOME/outbox. Only the airlock "
                                    "writes here.")
    s3_endpoint_url: str = Field("", description="S3 endpoint (MinIO, SeaweedFS...); empty: "
                                 "AWS.")
    s3_access_key: str = Field("", description="S3 access key of the service.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key of the service.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_sse: Literal["", "AES256", "aws:kms"] = Field(
        "", description="Server-side encryption requested on every S3 write.")
    s3_sse_kms_key_id: str = Field("", description="KMS key id for s3_sse=aws:kms.")
    secret_key: SecretStr | None = Field(None, description="Signs page tokens; generated in "
                                         "SPE_HOME when absent.")
    executor: str = Field(
        "local", pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="Where runs execute: 'local' (this machine, the embedded default), "
        "'slurm' (a SLURM cluster; see docs/operators.md), or the name of an executor a "
        "site installed (entry point group spe.executors).")
    slurm_bin_dir: Path = Field(Path("/usr/bin"), description="Folder of sbatch, squeue, "
                                "scontrol, scancel and sacct.")
    slurm_partition: str = Field("", description="Partition for head jobs; empty: the "
                                 "cluster's default.")
    slurm_submit_as: Literal["researcher", "service"] = Field(
        "researcher", description="'researcher': jobs run under the researcher's POSIX "
        "account (sbatch through sudo, see docs/operators.md); 'service': under the "
        "service's own account (development only).")
    slurm_accounting: bool = Field(False, description="Read final states from sacct "
                                   "(needs slurmdbd); the exit-status file is read first.")
    slurm_max_cpus: int = Field(16, ge=1, description="Site limit: CPUs of one job.")
    slurm_max_memory_mb: int = Field(64 * 1024, ge=64, description="Site limit: memory of "
                                     "one job.")
    slurm_max_time_minutes: int = Field(24 * 60, ge=1, description="Site limit: wall time "
                                        "of one head job.")
    slurm_command_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of each "
                                                 "SLURM command.")
    slurm_engine_path: str = Field("", description="PATH prefix on the cluster nodes where "
                                   "the engines live (e.g. /opt/spe/engines/bin).")
    slurm_rule_jobs: Literal["cluster", "in_head_job"] = Field(
        "cluster", description="Where a run's rules go when its head job runs on SLURM: "
        "'cluster' (one SLURM job per rule, submitted by the engine) or 'in_head_job' (the "
        "engine runs them inside the head job's allocation: no per-rule queueing nor "
        "status checks, for small workflows). A catalog entry's rule_jobs wins. See "
        "docs/slurm.md#latency-of-a-small-run.")
    slurm_status_init_seconds: int = Field(
        1, ge=1, le=600, description="rule_jobs=cluster: the engine's wait between status "
        "checks of its rule jobs after one ended (snakemake-executor-plugin-slurm's "
        "--slurm-init-seconds-before-status-checks; it adds 10 s after each check that sees "
        "none end). Raise it on a busy cluster to query squeue less often.")
    dispatcher: Literal["inline", "celery"] = Field(
        "inline", description="'inline': worker threads in the API process (embedded "
        "default); 'celery': Celery workers (`spe worker`) over redis_url.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker "
                           "(dispatcher=celery).")
    celery_visibility_timeout_seconds: float = Field(
        60.0, gt=0, description="How long a message a worker took stays invisible before "
        "Redis hands it to another worker (a killed worker's message is redelivered).")
    celery_broker_timeout_seconds: float = Field(
        2.0, gt=0, description="Bounds each connect, ping and publish to Redis; a "
        "submission answers 503 within about this time while Redis is down.")
    start_lease_seconds: float = Field(
        60.0, gt=0, description="dispatcher=celery: a run left INITIALIZING without a "
        "handle whose start lease was not refreshed for this long lost its worker "
        "mid-step; a worker's reconciler adopts or requeues it.")
    audit_checkpoint_location: str = Field(
        "", description="Where signed checkpoints of the audit chain's head are written: "
        "an absolute directory or s3://bucket/prefix, best on another host or an "
        "object-locked bucket; empty: SPE_HOME/audit-checkpoints.")
    audit_checkpoint_key_file: Path | None = Field(
        None, description="HMAC key that signs the audit checkpoints (made, mode 0600, when "
        "absent); empty: SPE_HOME/audit-checkpoint.key. Keep a copy apart from the database.")
    audit_checkpoint_seconds: float = Field(300.0, gt=0, description="How often each "
                                            "process checkpoints the audit chain's head "
                                            "(also when it stops).")
    pg_bin_dir: Path | None = Field(None, description="Folder of pg_dump and pg_restore "
                                    "(spe backup/restore with PostgreSQL); empty: PATH.")
    backup_timeout_seconds: float = Field(3600.0, gt=0, description="Timeout of pg_dump "
                                          "and pg_restore in spe backup/restore.")
    snakemake_bin: str = Field("snakemake", description="Snakemake executable.")
    nextflow_bin: str = Field("nextflow", description="Nextflow executable.")

    image_store: Path | None = Field(
        None, description="The TES image store and its catalog images.yaml (`spe image "
        "import`); empty: SPE_HOME/images.")
    image_group: str = Field("", description="POSIX group that may read imported images "
                             "(on SLURM: every researcher's, e.g. spe-researchers); "
                             "empty: private to the service.")
    container_runtime: Literal["charliecloud", "apptainer"] = Field(
        "charliecloud", description="HPC container runtime TES executors run under.")
    ch_run_bin: str = Field("ch-run", description="Charliecloud's ch-run on the nodes.")
    apptainer_bin: str = Field("apptainer", description="Apptainer on the nodes.")
    task_python: str = Field("", description="Python 3 that runs a TES task's driver in its "
                             "job (any, standard library only); empty: the service's own "
                             "with the local executor, /usr/bin/python3 on SLURM.")

    log_format: Literal["text", "json"] = Field(
        "text", description="Service log lines: 'text', or 'json' (one object per line, "
        "with request_id, run_id and event fields; docs/operators.md).")
    access_log: bool = Field(False, description="Log every HTTP request (method, path "
                             "without query, operation, status, duration) to spe.access.")
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token a Prometheus scrape of /metrics must send, or "
        "'sha256:<hex>' of it (only the digest is kept); unset: /metrics answers 404.")
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="`spe worker`: serve this process's metrics "
        "(reconciler lag) on this port, without a token (0: off); bind it to loopback or "
        "the site network only (worker_metrics_host).")
    worker_metrics_host: str = Field("127.0.0.1", description="Address of a worker's "
                                     "metrics port.")
    readiness_optional: tuple[str, ...] = Field(
        (), description="Readiness checks reported but not required: /readyz answers 200 "
        "'degraded' when only these fail (e.g. [\"redis\"]: keep serving reads while "
        "Redis is down).")
    readiness_cache_seconds: float = Field(
        10.0, ge=0, description="How long /readyz reuses the answer of a remote check "
        "(SLURM controller, storage zones, identity provider).")

    swagger_ui: bool | None = Field(
        None, description="Serve Swagger UI at /ga4gh/wes/v1/ui/ and /spe/v1/ui/; unset: "
        "on with auth_mode=dev, off with auth_mode=oidc (production).")

    service_name: str = Field("SPE workflow execution service", description="service-info name.")
    organization_name: str = Field("de.NBI SPE", description="service-info organization.")
    organization_url: str = Field("https://www.denbi.de", description="Organization URL.")
    auth_instructions_url: str = Field(
        "", description="Where users learn to get a token; empty: this service's own "
        "/spe/v1/auth-instructions.")
    contact_url: str = Field("", description="service-info contactUrl (a mailto: or "
                             "https URL); empty: left out.")
    documentation_url: str = Field("", description="service-info documentationUrl; "
                                   "empty: left out.")
    environment: str = Field("", description="service-info environment, e.g. 'prod' or "
                             "'test'; empty: left out.")
    cors_allowed_origins: tuple[str, ...] = Field(
        (), description="Origins (scheme://host[:port]) whose browser pages may call the "
        "API with a bearer token (CORS), e.g. a dashboard's; empty: CORS is off.")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("SPE_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.auth_mode == "oidc" and not self.oidc_issuer:
            raise ValueError("auth_mode=oidc needs oidc_issuer")
        if self.auth_mode == "oidc" and self.policy_file is None:
            raise ValueError("auth_mode=oidc needs policy_file (deny by default)")
        if self.catalog_dir is None and self.auth_mode == "dev" and _REPO_CATALOG.is_dir():
            self.catalog_dir = _REPO_CATALOG  # the embedded default, from a checkout
        for origin in self.cors_allowed_origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
                raise ValueError(f"SPE_CORS_ALLOWED_ORIGINS: {origin[:100]!r} is not an "
                                 "origin (scheme://host[:port], no path, no '*')")
        check_transport_security(self)
        return self

    def catalog_root(self) -> Path:
        """``catalog_dir``; a ``ValueError`` saying what to set when there is none."""
        if self.catalog_dir is None:
            where = ("production (auth_mode=oidc) has no default catalog"
                     if self.auth_mode == "oidc" else
                     "the demo catalog exists only in a source checkout")
            raise ValueError(f"no workflow catalog: set SPE_CATALOG_DIR (or catalog_dir in "
                             f"SPE_CONFIG) to the allowlist folder; {where}")
        return self.catalog_dir

    def check_for_serving(self) -> None:
        """Refuse combinations that are unsafe to serve: the development issuer accepts
        tokens anyone on this machine can mint, so its API must stay on loopback."""
        if self.auth_mode == "dev" and not _is_loopback(self.host):
            raise ValueError(f"auth_mode=dev serves only on a loopback address, not "
                             f"{self.host!r}; configure an OIDC issuer (SPE_AUTH_MODE=oidc)")

    @property
    def swagger_ui_enabled(self) -> bool:
        """``swagger_ui`` if set, else only in development (``auth_mode=dev``)."""
        return self.swagger_ui if self.swagger_ui is not None else self.auth_mode == "dev"

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL; with database_ca_file, PostgreSQL's certificate verified."""
        url = self.database_url or f"sqlite:///{self.home / 'spe.db'}"
        return verified_database_url(url, self.database_ca_file)

    @property
    def images_dir(self) -> Path:
        return self.image_store or self.home / "images"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def page_secret(self) -> bytes:
        """The configured secret, or one generated once and kept in SPE_HOME (mode 0600)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.home / "secret.key"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def redacted(self) -> dict[str, Any]:
        """A view safe to log: secrets and credentials in URLs masked."""
        data = self.model_dump(mode="json")
        data["secret_key"] = "***" if self.secret_key else None
        data["oidc_client_secret"] = "***" if self.oidc_client_secret else None
        data["s3_secret_key"] = "***" if self.s3_secret_key else None
        data["metrics_token"] = "***" if self.metrics_token else None
        for key in ("database_url", "redis_url"):
            if "@" in data[key]:
                scheme, _, rest = data[key].partition("://")
                data[key] = f"{scheme}://***@{rest.rsplit('@', 1)[-1]}"
        return data
