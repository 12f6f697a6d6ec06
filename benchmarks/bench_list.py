"""Latency of `GET /ga4gh/wes/v1/runs` with 10k and 100k stored runs for one user.

After `upgrade(url)` the service is built in-process (`create_app(...,
dispatcher_factory=NullDispatcher)`, nothing is ever executed) and one real run is
submitted over HTTP; its stored row is the template of the generated ones (so they carry
the owner and request shape the service really stores) and is then deleted. Rows are
bulk-inserted with SQLAlchemy core straight into `runs` and `run_tags`; other users own a
further share, interleaved with the measured user's, so the listing has to skip them.
Queries go over HTTP with one keep-alive `requests.Session`.

Cases, each at page_size 50 and 500:
  first      the first page
  deep       the page reached by following next_page_token up to --depth pages (fewer when
             the user has fewer pages); the saved token is re-sent for every sample
  filtered   first page of state=COMPLETE&tag=batch:7 (about 3% of the user's runs match)
  common-tag first page of tag=suite:all, which every run carries: the worst case of a
             plan that starts from the tag index
  no-match   first page of tag=batch:none, which matches nothing: the worst case of a plan
             that starts from the user's runs (every one of them is examined)

Listing is keyset-paged (`seq < token position ORDER BY seq DESC LIMIT n`), so the first
and deep pages should cost about the same at 10k and at 100k (ratio near 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from _common import (
    SERVER_MODES,
    WES,
    CpuWatch,
    InProcessServer,
    build_catalog,
    percentile,
    print_machine,
    print_table,
    scratch_dir,
    submit_parts,
)
from sqlalchemy import delete, func, insert, select

from spe.adapters.db.session import make_engine, upgrade
from spe.adapters.db.tables import Base
from tests.postgres import start_postgres

USER = "bench"
OTHERS = 3
STATES = ["COMPLETE", "EXECUTOR_ERROR", "CANCELED", "SYSTEM_ERROR", "RUNNING", "QUEUED"]
STATE_WEIGHTS = [60, 15, 10, 5, 5, 5]
BATCHES = 20
CHUNK = 5000
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PARAMS = json.dumps({"seconds": 0})


def probe_template(url: str, server: InProcessServer, token: str) -> dict[str, Any]:
    """Submits one real run over HTTP and returns its stored row, then deletes it: the
    generated rows copy it, so they carry whatever the service stores for this user
    (``owner_sub`` as the verifier maps it, project, request shape, new columns)."""
    resp = requests.post(server.url + WES + "/runs", files=submit_parts("sleepy", PARAMS),
                         headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if resp.status_code != 200:
        raise SystemExit(f"probe submission failed: {resp.status_code} {resp.text[:500]}")
    runs = Base.metadata.tables["runs"]
    engine = make_engine(url)
    with engine.begin() as conn:
        row = conn.execute(select(runs).where(runs.c.id == resp.json()["run_id"])).one()
        conn.execute(delete(runs).where(runs.c.id == row.id))  # tags cascade
    engine.dispose()
    return dict(row._mapping)


def populate(url: str, template: dict[str, Any], n_user: int, n_others: int,
             seed: int) -> float:
    """Inserts the runs and their tags; returns the seconds it took."""
    rng = random.Random(seed)
    owner = template["owner_sub"]
    others = [f"other{i}|{owner}" for i in range(OTHERS)]
    owners = [owner] * n_user + [rng.choice(others) for _ in range(n_others)]
    rng.shuffle(owners)
    runs, tags = Base.metadata.tables["runs"], Base.metadata.tables["run_tags"]
    engine = make_engine(url)
    t0 = time.perf_counter()
    run_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        first = (conn.execute(select(func.max(runs.c.seq))).scalar() or 0) + 1
        for seq, who in enumerate(owners, start=first):
            state = rng.choices(STATES, STATE_WEIGHTS)[0]
            created = EPOCH + timedelta(seconds=seq * 30)
            final = state not in ("RUNNING", "QUEUED")
            run_tags = {"batch": str(rng.randrange(BATCHES)), "sample": f"s{rng.randrange(97)}",
                        "suite": "all"}
            run_rows.append({
                **template, "seq": seq, "id": f"{rng.getrandbits(128):032x}",
                "owner_sub": who, "state": state,
                # other users' runs in other projects: visible to no one but an operator
                **({} if who == owner else {"owner_name": who.split("|", 1)[0],
                                            "project": who.split("|", 1)[0]}),
                "request": {**template["request"], "tags": run_tags},
                "created_at": created,
                "start_time": created + timedelta(seconds=2) if state != "QUEUED" else None,
                "end_time": created + timedelta(seconds=20) if final else None,
                "exit_code": {"COMPLETE": 0, "EXECUTOR_ERROR": 1}.get(state),
            })
            tag_rows.extend({"run_seq": seq, "key": k, "value": v} for k, v in run_tags.items())
            if len(run_rows) >= CHUNK:
                conn.execute(insert(runs), run_rows)
                conn.execute(insert(tags), tag_rows)
                run_rows, tag_rows = [], []
        if run_rows:
            conn.execute(insert(runs), run_rows)
            conn.execute(insert(tags), tag_rows)
    engine.dispose()
    return time.perf_counter() - t0


def timed_get(session: requests.Session, url: str, params: list[tuple[str, str]],
              samples: int) -> tuple[list[float], dict[str, Any]]:
    lat = []
    body: dict[str, Any] = {}
    for _ in range(samples):
        t0 = time.perf_counter()
        resp = session.get(url, params=params, timeout=60)
        lat.append(time.perf_counter() - t0)
        if resp.status_code != 200:
            raise SystemExit(f"GET {resp.url} -> {resp.status_code}: {resp.text[:500]}")
        body = resp.json()
    return lat, body


def measure(server: InProcessServer, token: str, samples: int, depth: int,
            page_sizes: list[int]) -> list[dict[str, Any]]:
    url = server.url + WES + "/runs"
    out = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        timed_get(session, url, [("page_size", "50")], 10)  # warm-up: JWKS, caches, pool
        for size in page_sizes:
            ps = ("page_size", str(size))
            lat, body = timed_get(session, url, [ps], samples)
            out.append({"case": "first", "page_size": size, "page": 1, "lat": lat,
                        "rows": len(body["runs"])})

            token, page, walk = body["next_page_token"], 1, time.perf_counter()
            while token and page < depth:
                _lat, nxt = timed_get(session, url, [ps, ("page_token", token)], 1)
                if not nxt["next_page_token"]:
                    break
                token, page = nxt["next_page_token"], page + 1
            walk = time.perf_counter() - walk
            lat, body = timed_get(session, url, [ps, ("page_token", token)], samples)
            out.append({"case": "deep", "page_size": size, "page": page + bool(token),
                        "lat": lat,
                        "rows": len(body["runs"]), "walk": walk})

            flt = [ps, ("state", "COMPLETE"), ("tag", "batch:7")]
            lat, body = timed_get(session, url, flt, samples)
            out.append({"case": "filtered", "page_size": size, "page": 1, "lat": lat,
                        "rows": len(body["runs"])})

            lat, body = timed_get(session, url, [ps, ("tag", "suite:all")], samples)
            out.append({"case": "common-tag", "page_size": size, "page": 1, "lat": lat,
                        "rows": len(body["runs"])})

            lat, body = timed_get(session, url, [ps, ("tag", "batch:none")],
                                  max(3, samples // 3))
            out.append({"case": "no-match", "page_size": size, "page": 1, "lat": lat,
                        "rows": len(body["runs"])})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000",
                        help="runs of the measured user, comma-separated (default "
                             "10000,100000); the first is the reference of the ratios")
    parser.add_argument("--others", type=float, default=0.2,
                        help="rows of three other users, as a fraction of the measured "
                             "user's (default 0.2)")
    parser.add_argument("--samples", type=int, default=30,
                        help="timed requests per case (default 30; no-match uses a third)")
    parser.add_argument("--depth", type=int, default=50,
                        help="pages followed for the deep case (default 50)")
    parser.add_argument("--page-sizes", default="100,500", help="default 100,500")
    parser.add_argument("--databases", default="sqlite",
                        help="sqlite, postgres or both (comma-separated; default sqlite). "
                             "postgres starts a private server (tests/postgres.py)")
    parser.add_argument("--seed", type=int, default=20260101, help="data generator seed")
    parser.add_argument("--server", choices=SERVER_MODES, default="process",
                        help="uvicorn in a spawned child process (default) or in a thread")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SPE_HOMEs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    page_sizes = [int(s) for s in args.page_sizes.split(",") if s.strip()]

    print_machine("bench_list: GET /runs over many stored runs")
    print(f"sizes: {sizes} runs for user {USER!r} (+{args.others:.0%} for {OTHERS} other "
          f"users), page sizes {page_sizes}, {args.samples} samples per case, deep = up to "
          f"{args.depth} pages, seed {args.seed}, server: uvicorn in a {args.server}\n")

    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    for database in databases:
        run_one(database, sizes, page_sizes, args)


def run_one(database: str, sizes: list[int], page_sizes: list[int],
            args: argparse.Namespace) -> None:
    print(f"-- database: {database} --\n")
    watch = CpuWatch()
    results: dict[int, list[dict[str, Any]]] = {}
    load_rows = []
    with scratch_dir("spe-bench-list-", args.keep) as tmp, \
            contextlib.ExitStack() as stack:
        catalog = build_catalog(tmp / "catalog")
        postgres = None
        if database == "postgres":
            postgres = start_postgres(tmp)
            stack.callback(postgres.stop)
        for n in sizes:
            home = Path(tmp) / f"home-{n}"
            # the default database of SPE_HOME, or a fresh PostgreSQL database
            url = postgres.create_database() if postgres else f"sqlite:///{home / 'spe.db'}"
            n_others = int(n * args.others)
            home.mkdir()
            upgrade(url)
            with InProcessServer(home, catalog, mode=args.server,
                                 database_url=url if postgres else "") as server:
                # loaded while the server is up but idle, after one real submission
                token = server.token(USER)
                template = probe_template(url, server, token)
                seconds = populate(url, template, n, n_others, args.seed)
                if postgres:
                    postgres.execute("ANALYZE", database=url.rsplit("/", 1)[-1])
                load_rows.append([n, n_others, seconds, (n + n_others) / seconds])
                results[n] = measure(server, token, args.samples, args.depth, page_sizes)

    print(watch.report() + "\n")
    print("bulk load (runs + 3 tags each, one transaction):")
    print_table(["user runs", "other runs", "seconds", "runs/s"], load_rows)

    rows = []
    for n, cases in results.items():
        for c in cases:
            rows.append([n, c["case"], c["page_size"], c["page"], c["rows"], len(c["lat"]),
                         percentile(c["lat"], 50) * 1000, percentile(c["lat"], 95) * 1000])
    print("GET /runs latency:")
    print_table(["user runs", "case", "page_size", "page", "rows", "samples", "p50 ms",
                 "p95 ms"], rows)

    if len(sizes) > 1:
        ref = sizes[0]
        ratio_rows = []
        for i, c in enumerate(results[ref]):
            row: list[Any] = [c["case"], c["page_size"], percentile(c["lat"], 50) * 1000]
            for n in sizes[1:]:
                other = results[n][i]
                p50 = percentile(other["lat"], 50) * 1000
                row += [p50, f"{p50 / (percentile(c['lat'], 50) * 1000):.2f}x"]
            ratio_rows.append(row)
        headers = ["case", "page_size", f"p50 ms @{ref}"]
        for n in sizes[1:]:
            headers += [f"p50 ms @{n}", f"{n}/{ref}"]
        print("ratio of p50 latencies (keyset paging: first and deep should stay near 1x):")
        print_table(headers, ratio_rows)


if __name__ == "__main__":
    main()
