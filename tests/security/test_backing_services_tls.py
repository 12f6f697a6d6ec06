"""The backing services over TLS, with certificates verified: PostgreSQL
(``sslmode=verify-full`` through ``SPE_DATABASE_CA_FILE``), Redis (``rediss://`` with
``SPE_REDIS_CA_FILE``: the Celery broker and the readiness ping) and S3 (https with
``SPE_S3_CA_FILE``), each a real server started with a certificate from a test CA.

Each service is checked three ways: with the right CA the connection is made and is
encrypted; with another CA, or a certificate for another host name, it is refused. Last,
one WES run goes through all of them at once: `spe serve --tls-cert` on PostgreSQL, a
`spe worker` fed over rediss://, input data and quarantine in https S3.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from spe.adapters.db.session import make_engine, upgrade
from spe.adapters.queue.celery import BrokerOptions, CeleryDispatcher, make_celery
from spe.adapters.storage.factory import S3Settings, StoreFactory
from spe.config import Settings
from spe.domain.errors import ServiceUnavailable
from tests.celery.cluster import Cluster
from tests.helpers import ROOT, WES, Api
from tests.postgres import PostgresServer, PostgresUnavailable, start_postgres
from tests.redis_server import RedisServer, RedisUnavailable, start_redis
from tests.s3_server import S3Server, S3Unavailable, start_s3
from tests.tls_ca import TestCa, other_ca

HOST_ONLY = ("localhost",)  # certificates name the host, not 127.0.0.1: a mismatch test
COHORT = ROOT / "examples/datasets/demo-cohorts/cohort_a.tsv"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("backing-ca"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return other_ca(tmp_path_factory.mktemp("stranger-ca"))


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory, ca: TestCa) -> Iterator[PostgresServer]:
    try:
        server = start_postgres(tmp_path_factory.mktemp("pg-tls"),
                                tls=ca.issue("postgres", HOST_ONLY))
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL is unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rds(tmp_path_factory: pytest.TempPathFactory, ca: TestCa) -> Iterator[RedisServer]:
    try:
        server = start_redis(tmp_path_factory.mktemp("redis-tls"),
                             tls=(ca.issue("redis", HOST_ONLY), ca.pem))
    except RedisUnavailable as exc:
        pytest.skip(f"Redis is unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, ca: TestCa) -> Iterator[S3Server]:
    try:
        server = start_s3(tmp_path_factory.mktemp("s3-tls"),
                          tls=(ca.issue("s3", HOST_ONLY), ca.pem))
    except S3Unavailable as exc:
        pytest.skip(f"no S3 server: {exc}")
    yield server
    server.stop()


# --- PostgreSQL -------------------------------------------------------------------------

def _pg_url(pg: PostgresServer, host: str = "localhost", query: str = "") -> str:
    return f"postgresql+psycopg://postgres@{host}:{pg.port}/spe{query}"


def test_postgres_is_reached_over_verified_tls(pg: PostgresServer, ca: TestCa,
                                               tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=_pg_url(pg, query="?sslmode=disable"),
                        database_ca_file=ca.pem)
    assert "sslmode=verify-full" in settings.db_url  # the weaker mode is replaced
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT ssl, version FROM pg_stat_ssl "
                                    "WHERE pid = pg_backend_pid()")).one()
            assert row.ssl is True and row.version in ("TLSv1.2", "TLSv1.3")
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(("host", "which", "why"), [
    ("localhost", "stranger", "certificate verify failed"),
    ("127.0.0.1", "ca", "does not match host name"),
])
def test_postgres_with_an_unknown_ca_or_another_name_is_refused(
        pg: PostgresServer, ca: TestCa, stranger: TestCa, tmp_path: Path,
        host: str, which: str, why: str) -> None:
    trusted = {"ca": ca, "stranger": stranger}[which]
    settings = Settings(home=tmp_path, database_url=_pg_url(pg, host),
                        database_ca_file=trusted.pem)
    engine = make_engine(settings.db_url)
    with pytest.raises(OperationalError, match=why), engine.connect():
        pass
    engine.dispose()


def test_postgres_refuses_unencrypted_connections(pg: PostgresServer) -> None:
    engine = make_engine(_pg_url(pg, query="?sslmode=disable"))
    with pytest.raises(OperationalError, match="no encryption"), engine.connect():
        pass
    engine.dispose()


# --- Redis (the Celery broker) ------------------------------------------------------------

def _dispatcher(url: str, ca_file: Path | None) -> CeleryDispatcher:
    options = BrokerOptions(url, 5.0, 2.0, str(ca_file or ""))
    return CeleryDispatcher(make_celery(options), options.timeout)


def test_celery_publishes_to_redis_over_verified_tls(rds: RedisServer, ca: TestCa) -> None:
    url = rds.url(3)
    dispatcher = _dispatcher(url, ca.pem)
    try:
        assert dispatcher.ready()
        dispatcher.enqueue("run-over-tls")
    finally:
        dispatcher.close()
    reader = redis.Redis.from_url(url, ssl_ca_certs=str(ca.pem),
                                  ssl_cert_reqs=ssl.CERT_REQUIRED)
    try:
        assert reader.llen("spe") == 1
        assert reader.connection_pool.connection_class is redis.SSLConnection
    finally:
        reader.close()


@pytest.mark.parametrize(("host", "which"), [("localhost", "stranger"),
                                             ("127.0.0.1", "ca")])
def test_redis_with_an_unknown_ca_or_another_name_is_refused(
        rds: RedisServer, ca: TestCa, stranger: TestCa, host: str, which: str) -> None:
    trusted = {"ca": ca, "stranger": stranger}[which]
    dispatcher = _dispatcher(rds.url(3, host=host), trusted.pem)
    try:
        assert dispatcher.ready() is False
    finally:
        dispatcher.close()


def test_rediss_without_a_ca_file_verifies_against_the_system_cas(rds: RedisServer) -> None:
    dispatcher = _dispatcher(rds.url(3), None)
    try:
        assert dispatcher.ready() is False  # the test CA is not a system CA
    finally:
        dispatcher.close()


# --- S3 -----------------------------------------------------------------------------------

def _store(s3: S3Server, ca_file: Path | None, endpoint: str | None = None) -> StoreFactory:
    keys = s3.admin_keys
    return StoreFactory(S3Settings(endpoint or s3.endpoint, keys.access_key,
                                   keys.secret_key, ca_file=str(ca_file or "")))


def test_s3_objects_go_over_verified_https(s3: S3Server, ca: TestCa, tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    store = _store(s3, ca.pem)(f"s3://{bucket}/zone")
    source = tmp_path / "blob"
    source.write_bytes(b"enclave bytes")
    with source.open("rb") as fh:
        store.put("a/blob", fh)
    assert b"".join(store.get("a/blob")) == b"enclave bytes"
    assert s3.endpoint.startswith("https://")


@pytest.mark.parametrize(("host", "which"), [("localhost", "stranger"),
                                             ("127.0.0.1", "ca"), ("localhost", None)])
def test_s3_with_an_unknown_ca_or_another_name_is_refused(
        s3: S3Server, ca: TestCa, stranger: TestCa, host: str, which: str | None) -> None:
    trusted = {"ca": ca.pem, "stranger": stranger.pem, None: None}[which]
    endpoint = s3.endpoint.replace("localhost", host)
    store = _store(s3, trusted, endpoint)(f"s3://{s3.reader_bucket}/x")
    with pytest.raises(ServiceUnavailable):
        list(store.list(""))


# --- all at once --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def all_tls(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path, ca: TestCa,
            pg: PostgresServer, rds: RedisServer, s3: S3Server) -> Iterator[Cluster]:
    client = s3.client()
    for bucket in ("cohorts", "quarantine"):
        s3.make_bucket(bucket)
    client.put_object(Bucket="cohorts", Key="study-a/cohort.tsv", Body=COHORT.read_bytes())
    home = tmp_path_factory.mktemp("all-tls-home")
    policy = yaml.safe_load((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    policy["projects"][0]["storage"] = {"quarantine": "s3://quarantine/proj-a"}
    policy["datasets"] = [{"id": "s3-cohort", "location": "s3://cohorts/study-a",
                           "projects": ["proj-a"]}]
    policy_file = home.parent / "all-tls-policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    pg.execute("CREATE DATABASE all_tls")
    api_cert = ca.issue("spe-api")
    cluster = Cluster(home, catalog_dir, rds, 4, env={
        "SPE_DATABASE_URL": f"postgresql+psycopg://postgres@localhost:{pg.port}/all_tls",
        "SPE_DATABASE_CA_FILE": str(ca.pem), "SPE_REDIS_CA_FILE": str(ca.pem),
        "SPE_POLICY_FILE": str(policy_file), "SPE_S3_ENDPOINT_URL": s3.endpoint,
        "SPE_S3_CA_FILE": str(ca.pem), "SPE_S3_ACCESS_KEY": s3.admin_keys.access_key,
        "SPE_S3_SECRET_KEY": s3.admin_keys.secret_key,
        "SPE_TLS_CERT_FILE": str(api_cert.cert), "SPE_TLS_KEY_FILE": str(api_cert.key)})
    cluster.server.ca_file = ca.pem
    with cluster:
        cluster.start_worker()
        yield cluster


def test_a_run_goes_through_tls_to_every_backing_service(all_tls: Cluster, s3: S3Server,
                                                         pg: PostgresServer) -> None:
    server = all_tls.server
    api = Api(server.url, server.token("alice", groups=("spe:proj-a",)), server.verify)
    assert api.base.startswith("https://")
    run_id = api.run_id(api.submit("tsv-summary@1.1.0",
                                   {"input": "dataset://s3-cohort/cohort.tsv"}))
    assert api.wait(run_id, timeout=180) == "COMPLETE", all_tls.logs()
    outputs = api.get(f"{WES}/runs/{run_id}").json()["outputs"]
    body = s3.client().get_object(Bucket="quarantine",
                                  Key=f"proj-a/{run_id}/results/summary.csv")["Body"].read()
    assert outputs["results/summary.csv"]["checksum"] == \
        f"sha256:{hashlib.sha256(body).hexdigest()}"
    # every session the API and the worker hold to PostgreSQL is encrypted
    engine = make_engine(_pg_url(pg, query=""))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.datname = 'all_tls'")).all()
    finally:
        engine.dispose()
    assert rows and all(row.ssl for row in rows)
