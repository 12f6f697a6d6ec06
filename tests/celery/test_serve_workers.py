"""`spe serve --workers 2` (``spe.cli.workers``): two API processes on one port, on
PostgreSQL, with a real OIDC provider and a `spe worker` on Redis; the processes serve the
same runs, ``/metrics`` counts the requests of both, and configurations whose processes
would not be interchangeable are refused before anything starts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from spe.cli.workers import check_workers
from spe.config import Settings
from spe.observability_wiring import MULTIPROC_ENV
from tests.celery.cluster import Cluster
from tests.helpers import ROOT, WES, Api
from tests.oidc_provider import OidcProvider
from tests.postgres import PostgresServer
from tests.redis_server import RedisServer, databases

AUTHORITY = "perun.aai.lifescience-ri.eu"
GROUP = "urn:geant:lifescience-ri.eu:group:spe:proj-a"
SCRAPE = "scrape-token-of-the-workers-test"
REQUESTS = 60


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    idp = OidcProvider(clients={"spe": "spe-secret"}).start()
    idp.add_user("alice", entitlements=[f"{GROUP}#{AUTHORITY}"])
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
            redis_server: RedisServer, postgres_server: PostgresServer,
            provider: OidcProvider) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("workers-home")
    policy = home.parent / "workers-policy.yaml"
    policy.write_text(yaml.safe_dump({
        "trusted_authorities": [AUTHORITY],
        "projects": [{"id": "proj-a", "title": "A", "entitlements": [GROUP]}]}))
    env = {"SPE_DATABASE_URL": postgres_server.create_database(),
           "SPE_AUTH_MODE": "oidc", "SPE_OIDC_ISSUER": provider.issuer,
           "SPE_OIDC_AUDIENCE": "spe", "SPE_OIDC_CLIENT_SECRET": "spe-secret",
           "SPE_POLICY_FILE": str(policy), "SPE_METRICS_TOKEN": SCRAPE}
    started = Cluster(home, catalog_dir, redis_server, next(databases), env=env)
    started.server.serve_args = ("--workers", "2")
    with started:
        started.start_worker()
        yield started


def api_processes(cluster: Cluster) -> list[psutil.Process]:
    assert cluster.server.proc is not None
    children = psutil.Process(cluster.server.proc.pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def served_service_info(cluster: Cluster) -> float:
    scrape = requests.get(cluster.server.url + "/metrics", timeout=10,
                          headers={"Authorization": f"Bearer {SCRAPE}"})
    assert scrape.status_code == 200, scrape.text
    for line in scrape.text.splitlines():
        if line.startswith("spe_http_request_duration_seconds_count") \
                and 'operation="GetServiceInfo"' in line:
            return float(line.split()[-1])
    return 0.0


def test_two_api_processes_serve_a_run_to_complete(cluster: Cluster,
                                                   provider: OidcProvider) -> None:
    assert len(api_processes(cluster)) == 2
    api = Api(cluster.server.url, provider.issue("alice")["access_token"])
    run_ids = [api.run_id(api.submit("sleepy", {"seconds": 0})) for _ in range(4)]
    for run_id in run_ids:  # each status poll may reach either process
        assert api.wait(run_id) == "COMPLETE"


def test_metrics_count_the_requests_of_every_process(cluster: Cluster) -> None:
    before = served_service_info(cluster)
    with ThreadPoolExecutor(6) as pool:  # a new connection each: both processes accept
        codes = list(pool.map(lambda _: requests.get(
            cluster.server.url + WES + "/service-info", timeout=10).status_code,
            range(REQUESTS)))
    assert codes == [200] * REQUESTS
    deadline = time.monotonic() + 10  # a request is counted just after its response
    while served_service_info(cluster) - before < REQUESTS and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(5):  # every scrape, whichever process answers it, counts them all
        assert served_service_info(cluster) - before == REQUESTS
    processes = api_processes(cluster)
    shared = Path(processes[0].environ()[MULTIPROC_ENV])
    served = {int(f.stem.rsplit("_", 1)[1]) for f in shared.glob("histogram_*.db")}
    assert served == {p.pid for p in processes}  # both processes answered requests


def test_workers_above_one_are_refused_with_the_inline_dispatcher_or_the_dev_issuer(
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SPE_DISPATCHER=celery"):
        check_workers(Settings(home=tmp_path), 2)
    with pytest.raises(ValueError, match="SPE_AUTH_MODE=oidc"):
        check_workers(Settings(home=tmp_path, dispatcher="celery"), 2)
    check_workers(Settings(home=tmp_path), 1)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    done = subprocess.run([sys.executable, "-m", "spe.cli.main", "serve", "--workers", "2"],
                          cwd=ROOT, env={"SPE_HOME": str(home), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "needs SPE_DISPATCHER=celery" in done.stderr
    assert "Traceback" not in done.stderr
