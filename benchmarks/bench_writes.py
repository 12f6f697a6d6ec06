"""Writes: ``POST /runs`` with execution stubbed, in one process against sapporo, and with
N API processes (`spe serve --workers N`) against one.

1. **One process.** spe with its dispatcher stubbed (``NullDispatcher``, SQLite, the dev
   issuer's token) and, with ``--sapporo BIN``, sapporo-service started by this script
   with a ``run.sh`` that exits at once (its execution stubbed: it still starts that
   script per run, as it does in service). One keep-alive client sends the same
   multipart submission to both, the two taking turns round by round.
2. **N processes** (``--workers 1,2``). `spe serve --workers N` on PostgreSQL with
   ``SPE_DISPATCHER=celery`` and no `spe worker` running (runs wait in Redis: execution
   stubbed), tokens from a real OIDC provider (``tests/oidc_provider.py``), load from
   client *processes* (``--clients``), so that the client's GIL is not the limit.

Usage: .venv/bin/python benchmarks/bench_writes.py [--sapporo /tmp/sapporo/bin/sapporo]
       [--requests 400] [--rounds 3] [--workers 1,2] [--clients 4]
(sapporo: ``python3 -m venv /tmp/sapporo && /tmp/sapporo/bin/pip install
'sapporo>=2.4,<2.5'``.) Nothing is asserted; the ratios are printed."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml
from _common import (
    CpuWatch,
    InProcessServer,
    build_catalog,
    free_port,
    print_machine,
    print_table,
    scratch_dir,
    submit_parts,
)

from tests.helpers import WES, Server
from tests.oidc_provider import OidcProvider
from tests.postgres import start_postgres
from tests.redis_server import start_redis

PARAMS = '{"seconds": 0}'
SAPPORO_FORM = [("workflow_type", (None, "SMK")), ("workflow_type_version", (None, "1.0")),
                ("workflow_url", (None, "https://example.org/Snakefile")),
                ("workflow_engine", (None, "snakemake")), ("workflow_params", (None, "{}"))]
GROUP = "urn:geant:lifescience-ri.eu:group:spe:proj-a"
AUTHORITY = "perun.aai.lifescience-ri.eu"


def post_many(url: str, token: str, form: list[tuple[str, tuple[None, str]]],
              n: int) -> float:
    """``n`` submissions over one keep-alive connection; requests per second. The body is
    encoded once (``http.client``, not ``requests``, sends it) so that the client costs
    little CPU beside the servers on a 2-core machine."""
    prepared = requests.Request("POST", url, files=form).prepare()
    headers = {"Content-Type": str(prepared.headers["Content-Type"])}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = prepared.body if isinstance(prepared.body, bytes) else str(prepared.body).encode()
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    start = time.perf_counter()
    for _ in range(n):
        conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status} {answer[:200]!r}")
    rate = n / (time.perf_counter() - start)
    conn.close()
    return rate


def _client(url: str, token: str, n: int, start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    post_many(url, token, submit_parts("sleepy", PARAMS), n)


def parallel_rate(url: str, token: str, n: int, clients: int) -> float:
    """``n`` submissions shared out to ``clients`` processes; requests per second."""
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0  # every client process imported and waiting
    procs = [ctx.Process(target=_client, args=(url, token, n // clients, start_at))
             for _ in range(clients)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError("a client process failed")
    return (n // clients * clients) / (time.time() - start_at)


@contextlib.contextmanager
def sapporo(binary: str, tmp: Path) -> Iterator[str]:
    runs, stub = tmp / "sapporo-runs", tmp / "run-stub.sh"
    runs.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    port = free_port()
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port), "--run-dir",
                             str(runs), "--run-sh", str(stub)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/service-info", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def one_process(args: argparse.Namespace, tmp: Path, catalog: Path) -> list[list[object]]:
    rates: dict[str, list[float]] = {"spe (stubbed dispatcher)": []}
    with contextlib.ExitStack() as stack:
        spe = stack.enter_context(InProcessServer(tmp / "home-one", catalog))
        targets = {"spe (stubbed dispatcher)": (spe.url + WES + "/runs", spe.token("bench"),
                                                submit_parts("sleepy", PARAMS))}
        if args.sapporo:
            base = stack.enter_context(sapporo(args.sapporo, tmp))
            targets["sapporo 2.4 (stub run.sh)"] = (base + "/runs", "", SAPPORO_FORM)
            rates["sapporo 2.4 (stub run.sh)"] = []
        for url, token, form in targets.values():
            post_many(url, token, form, 20)  # warm-up
        for _ in range(args.rounds):
            for name, (url, token, form) in targets.items():
                rates[name].append(post_many(url, token, form, args.requests))
    return _rows(rates, 1)


def n_processes(args: argparse.Namespace, tmp: Path, catalog: Path) -> list[list[object]]:
    with contextlib.ExitStack() as stack:
        postgres = start_postgres(tmp)
        stack.callback(postgres.stop)
        redis = start_redis(tmp)
        stack.callback(redis.stop)
        idp = OidcProvider(clients={"spe": "spe-secret"}).start()
        stack.callback(idp.stop)
        idp.add_user("alice", entitlements=[f"{GROUP}#{AUTHORITY}"])
        policy = tmp / "policy.yaml"
        policy.write_text(yaml.safe_dump({
            "trusted_authorities": [AUTHORITY],
            "projects": [{"id": "proj-a", "title": "A", "entitlements": [GROUP]}]}))
        rates: dict[str, list[float]] = {}
        for workers in args.workers:
            home = tmp / f"home-{workers}"
            home.mkdir(mode=0o700)
            server = Server(home=home, catalog=catalog, serve_args=("--workers", str(workers)),
                            env_extra={"SPE_DATABASE_URL": postgres.create_database(),
                                       "SPE_DISPATCHER": "celery", "SPE_REDIS_URL": redis.url(),
                                       "SPE_AUTH_MODE": "oidc", "SPE_OIDC_ISSUER": idp.issuer,
                                       "SPE_OIDC_AUDIENCE": "spe",
                                       "SPE_OIDC_CLIENT_SECRET": "spe-secret",
                                       "SPE_POLICY_FILE": str(policy)}).start()
            try:
                url, token = server.url + WES + "/runs", idp.issue("alice")["access_token"]
                post_many(url, token, submit_parts("sleepy", PARAMS), 40)  # warm-up
                name = f"spe serve --workers {workers}"
                rates[name] = [parallel_rate(url, token, args.requests, args.clients)
                               for _ in range(args.rounds)]
            finally:
                server.stop()
    return _rows(rates, args.clients)


def _rows(rates: dict[str, list[float]], clients: int) -> list[list[object]]:
    base = sorted(next(iter(rates.values())))[len(next(iter(rates.values()))) // 2]
    rows: list[list[object]] = []
    for name, values in rates.items():
        median = sorted(values)[len(values) // 2]
        rows.append([name, clients, f"{median:.0f}", f"{min(values):.0f}-{max(values):.0f}",
                     f"{median / base:.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sapporo", default="", help="sapporo's executable (part 1)")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=lambda v: [int(w) for w in v.split(",") if w],
                        default=[1, 2], help="API process counts (part 2; empty: skip)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (part 2)")
    parser.add_argument("--skip-one", action="store_true", help="skip part 1")
    args = parser.parse_args()
    print_machine("bench_writes: POST /runs, execution stubbed")
    watch = CpuWatch()
    rows: list[list[object]] = []
    with scratch_dir("spe-bench-writes-") as tmp:
        catalog = build_catalog(tmp / "catalog")
        if not args.skip_one:
            rows += one_process(args, tmp, catalog)
        if args.workers:
            rows += n_processes(args, tmp, catalog)
    print_table(["server", "clients", "submissions/s (median)", "range", "vs first row"],
                rows)
    print()
    print(watch.report())


if __name__ == "__main__":
    main()
