"""Throughput and latency of `POST /ga4gh/wes/v1/runs` with execution stubbed out.

The service is built in-process by `create_app(..., dispatcher_factory=NullDispatcher)`:
a submission is authenticated (RS256 bearer token against the dev issuer's JWKS), parsed,
validated against the catalog and the workflow's parameter schema, stored (run + tags +
audit event, SQLite in WAL mode) and handed to a dispatcher that does nothing. The same
load on `GET /ga4gh/wes/v1/service-info` (public, no token) is the baseline of the HTTP
stack; the ratios say what the submission path costs on top of it.

Clients are threads with one `requests.Session` each (keep-alive), all submitting the
`sleepy` test workflow with {"seconds": 0}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from _common import (
    SERVER_MODES,
    WES,
    CpuWatch,
    InProcessServer,
    build_catalog,
    print_machine,
    print_table,
    scratch_dir,
    submit_parts,
    summarize,
)

PARAMS = json.dumps({"seconds": 0})


@dataclass
class Result:
    endpoint: str
    clients: int
    n: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.n / self.seconds if self.seconds else float("nan")


def _drive(n: int, clients: int, make_call: Callable[[requests.Session, int], int],
           token: str) -> tuple[float, list[float], int]:
    """``n`` calls shared out to ``clients`` threads; (wall seconds, latencies, errors)."""
    counter = iter(range(n))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    start = threading.Barrier(clients + 1)

    def client() -> None:
        mine: list[float] = []
        bad = 0
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            start.wait()
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                t0 = time.perf_counter()
                status = make_call(session, i)
                mine.append(time.perf_counter() - t0)
                bad += status != 200
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, name=f"client-{c}") for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=500,
                        help="requests per endpoint and concurrency level (default 500)")
    parser.add_argument("-c", "--clients", default="1,4,8",
                        help="comma-separated client thread counts (default 1,4,8)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed requests per endpoint before measuring (default 20)")
    parser.add_argument("--server", choices=SERVER_MODES, default="process",
                        help="uvicorn in a spawned child process (default) or in a thread "
                             "of this process (clients then share its GIL)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SPE_HOME")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",") if c.strip()]

    print_machine("bench_submit: POST /runs with a NullDispatcher")
    print(f"requests per case: {args.requests}, client threads: {levels}, "
          f"server: uvicorn in a {args.server}, workflow: sleepy {PARAMS}\n")

    watch = CpuWatch()
    with scratch_dir("spe-bench-submit-", args.keep) as tmp:
        catalog = build_catalog(tmp / "catalog")
        with InProcessServer(tmp / "home", catalog, mode=args.server) as server:
            token = server.token("bench")
            runs_url = server.url + WES + "/runs"
            info_url = server.url + WES + "/service-info"

            def submit(session: requests.Session, _i: int) -> int:
                resp = session.post(runs_url, files=submit_parts("sleepy", PARAMS), timeout=60)
                return resp.status_code

            def info(session: requests.Session, _i: int) -> int:
                # public endpoint: no token, so it reports no per-user counts
                resp = session.get(info_url, headers={"Authorization": None}, timeout=60)
                return resp.status_code

            calls = {"POST /runs": submit, "GET /service-info": info}
            for call in calls.values():
                _drive(args.warmup, 1, call, token)
            results = []
            for clients in levels:
                for name, call in calls.items():
                    seconds, lat, errors = _drive(args.requests, clients, call, token)
                    results.append(Result(name, clients, args.requests, seconds, lat, errors))

    print(watch.report() + "\n")
    rows = []
    for r in results:
        s = summarize(r.latencies)
        rows.append([r.endpoint, r.clients, r.n, r.rps, s["p50"], s["p95"], s["p99"], r.errors])
    print_table(["endpoint", "clients", "n", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
                rows)

    by = {(r.endpoint, r.clients): r for r in results}
    ratio_rows = []
    for clients in levels:
        sub, base = by[("POST /runs", clients)], by[("GET /service-info", clients)]
        p50_ratio = summarize(sub.latencies)["p50"] / summarize(base.latencies)["p50"]
        ratio_rows.append([clients, f"{base.rps / sub.rps:.2f}x", f"{p50_ratio:.2f}x",
                           f"{sub.rps / by[('POST /runs', levels[0])].rps:.2f}x"])
    print("ratios (service-info is the baseline):")
    print_table(["clients", "info/submit req/s", "submit/info p50",
                 f"submit req/s vs {levels[0]} client(s)"], ratio_rows)
    if any(r.errors for r in results):
        raise SystemExit("some requests failed; the figures above are not valid")


if __name__ == "__main__":
    main()
