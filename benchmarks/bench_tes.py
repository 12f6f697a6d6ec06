"""TES: how fast tasks are accepted, how soon a created task runs, and how listings scale.

Three measurements, each printed with a baseline taken in the same run:

1. **CreateTask acceptance** (`POST /ga4gh/tes/v1/tasks`, one client, keep-alive) on the
   service built in-process with nothing executed (`NullDispatcher`), against `POST
   /ga4gh/wes/v1/runs` of the smallest workflow on the same server: req/s and p50, and
   their ratio. A create verifies the image's digest (hashing the busybox root) and checks
   the task's data; a submission resolves the catalog and validates params.
2. **Create -> job started -> ended** on a real `spe serve` (embedded default: inline
   worker, local executor, real Charliecloud): a task running `true`, polled every 10 ms,
   against bare `ch-run IMAGE -- true` on the same image (the floor of any container
   task). `--reconcile` sets the server's reconcile tick.
3. **ListTasks** MINIMAL and BASIC pages (page_size 256) with 10k and 100k stored tasks of
   the caller (and 20% of other users'), bulk-inserted from a real task's stored row.
   Keyset paging: the ratio 100k/10k should stay near 1.

    .venv/bin/python benchmarks/bench_tes.py [--sizes 10000,100000] [--creates 300]
"""

from __future__ import annotations

import argparse
import getpass
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from _common import (
    WES,
    InProcessServer,
    build_catalog,
    percentile,
    print_machine,
    print_table,
    scratch_dir,
    submit_parts,
)
from sqlalchemy import delete, func, insert, select

from spe.adapters.containers.images import import_image
from spe.adapters.db.session import make_engine, upgrade
from spe.adapters.db.tables import Base
from tests.helpers import Server

ROOT = Path(__file__).resolve().parents[1]
TES = "/ga4gh/tes/v1"
TASK = {"name": "bench", "tags": {"suite": "all"},
        "inputs": [{"path": "/data/in.txt", "content": "x\n"}],
        "outputs": [{"path": "/data/out.txt", "url": "quarantine:///out.txt"}],
        "executors": [{"image": "alpine", "command": ["cp", "/data/in.txt", "/data/out.txt"]}]}


def busybox(dest: Path) -> Path:
    subprocess.run([str(ROOT / "scripts/build-busybox-image.sh"), str(dest)], check=True,
                   capture_output=True, timeout=60)
    return dest


def timed(fn: Any, n: int) -> list[float]:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t0)
    return lat


def acceptance(server: InProcessServer, token: str, n: int) -> list[list[Any]]:
    rows = []
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {token}"

        def create() -> None:
            resp = s.post(server.url + TES + "/tasks", json=TASK, timeout=60)
            if resp.status_code != 200:
                raise SystemExit(f"create: {resp.status_code} {resp.text[:300]}")

        def submit() -> None:
            resp = s.post(server.url + WES + "/runs", timeout=60,
                          files=submit_parts("sleepy", '{"seconds": 0}'))
            if resp.status_code != 200:
                raise SystemExit(f"submit: {resp.status_code} {resp.text[:300]}")

        timed(create, 10)
        timed(submit, 10)
        for name, fn in (("POST /tasks (CreateTask)", create), ("POST /runs (baseline)", submit)):
            lat = timed(fn, n)
            rows.append([name, n, n / sum(lat), percentile(lat, 50) * 1000,
                         percentile(lat, 95) * 1000])
    rows.append(["ratio CreateTask / RunWorkflow (req/s)", "", rows[0][2] / rows[1][2], "", ""])
    return rows


def start_latency(home: Path, catalog: Path, image: Path, n: int,
                  reconcile: str) -> list[list[Any]]:
    server = Server(home=home, catalog=catalog, env_extra={"SPE_RECONCILE_SECONDS": reconcile})
    server.start()
    try:
        token = server.token("bench")
        started, ended = [], []
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {token}"
            for _ in range(n):
                t0 = time.perf_counter()
                task_id = s.post(server.url + TES + "/tasks", json={"executors": [
                    {"image": "alpine", "command": ["true"]}]}, timeout=60).json()["id"]
                seen_start = 0.0
                while True:
                    state = s.get(f"{server.url}{TES}/tasks/{task_id}", timeout=60
                                  ).json()["state"]
                    now = time.perf_counter() - t0
                    if state != "QUEUED" and not seen_start:
                        seen_start = now
                    if state in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"):
                        break
                    time.sleep(0.01)
                if state != "COMPLETE":
                    raise SystemExit(f"task {task_id} ended {state}")
                started.append(seen_start)
                ended.append(now)
    finally:
        server.stop()
    ch_run = shutil.which("ch-run") or "ch-run"
    env = {"PATH": "/usr/bin:/bin", "USER": getpass.getuser()}
    bare = timed(lambda: subprocess.run([ch_run, "--no-passwd", str(image), "--", "true"],
                                        check=True, timeout=60, env=env), n)
    return [["create -> left QUEUED", n, percentile(started, 50) * 1000, ""],
            ["create -> COMPLETE", n, percentile(ended, 50) * 1000,
             f"{percentile(ended, 50) / percentile(bare, 50):.1f}x"],
            ["bare ch-run IMAGE -- true (floor)", n, percentile(bare, 50) * 1000, "1.0x"]]


def populate(url: str, template: dict[str, Any], n: int, others: int, seed: int) -> float:
    rng = random.Random(seed)
    owner = template["owner_sub"]
    owners = [owner] * n + [f"other{i % 3}|{owner}" for i in range(others)]
    rng.shuffle(owners)
    runs, tags = Base.metadata.tables["runs"], Base.metadata.tables["run_tags"]
    engine = make_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        first = (conn.execute(select(func.max(runs.c.seq))).scalar() or 0) + 1
        batch, tag_rows = [], []
        for seq, who in enumerate(owners, start=first):
            batch.append({**template, "seq": seq, "id": f"{rng.getrandbits(128):032x}",
                          "owner_sub": who, "name": f"bench-{seq}",
                          **({} if who == owner else {"project": "elsewhere"})})
            tag_rows.append({"run_seq": seq, "key": "suite", "value": "all"})
            if len(batch) >= 5000:
                conn.execute(insert(runs), batch)
                conn.execute(insert(tags), tag_rows)
                batch, tag_rows = [], []
        if batch:
            conn.execute(insert(runs), batch)
            conn.execute(insert(tags), tag_rows)
    engine.dispose()
    return time.perf_counter() - t0


def listing(sizes: list[int], tmp: Path, catalog: Path, image: Path,
            samples: int) -> list[list[Any]]:
    rows = []
    for n in sizes:
        home = tmp / f"list-{n}"
        home.mkdir(mode=0o700)
        url = f"sqlite:///{home / 'spe.db'}"
        upgrade(url)
        import_image(home / "images", image, "busybox", "1.36", aliases=("alpine",))
        with InProcessServer(home, catalog) as server:
            token = server.token("bench")
            headers = {"Authorization": f"Bearer {token}"}
            made = requests.post(server.url + TES + "/tasks", json=TASK, headers=headers,
                                 timeout=60).json()["id"]
            runs = Base.metadata.tables["runs"]
            engine = make_engine(url)
            with engine.begin() as conn:
                template = dict(conn.execute(select(runs).where(runs.c.id == made)).one()
                                ._mapping)
                conn.execute(delete(runs).where(runs.c.id == made))
            engine.dispose()
            populate(url, template, n, n // 5, 20261205)
            with requests.Session() as s:
                s.headers.update(headers)
                for view in ("MINIMAL", "BASIC"):
                    params = {"view": view, "page_size": "256"}
                    timed(lambda p=params: s.get(server.url + TES + "/tasks", params=p,
                                                 timeout=60), 5)
                    lat = timed(lambda p=params: s.get(server.url + TES + "/tasks",
                                                       params=p, timeout=60), samples)
                    rows.append([n, view, 256, percentile(lat, 50) * 1000,
                                 percentile(lat, 95) * 1000])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--reconcile", default="1.0", help="the server's reconcile tick, s")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if shutil.which("ch-run") is None:
        sys.exit("bench_tes needs Charliecloud (scripts/install-test-deps.sh)")
    print_machine("bench_tes: TES create, start and list")
    with scratch_dir("spe-bench-tes-", args.keep) as tmp:
        catalog = build_catalog(tmp / "catalog")
        image = busybox(tmp / "busybox")
        home = tmp / "accept"
        home.mkdir(mode=0o700)
        upgrade(f"sqlite:///{home / 'spe.db'}")
        import_image(home / "images", image, "busybox", "1.36", aliases=("alpine",))
        with InProcessServer(home, catalog) as server:
            rows = acceptance(server, server.token("bench"), args.creates)
        print("\n1. acceptance, one client, nothing executed:")
        print_table(["request", "n", "req/s", "p50 ms", "p95 ms"], rows)

        start_home = tmp / "start"
        start_home.mkdir(mode=0o700)
        import_image(start_home / "images", image, "busybox", "1.36", aliases=("alpine",))
        rows = start_latency(start_home, catalog, start_home / "images" / next(
            p.name for p in (start_home / "images").iterdir() if p.is_dir()), args.starts,
            args.reconcile)
        print(f"\n2. create -> start -> end on the embedded default (reconcile tick "
              f"{args.reconcile} s):")
        print_table(["step", "n", "p50 ms", "vs floor"], rows)

        sizes = [int(s) for s in args.sizes.split(",") if s]
        rows = listing(sizes, tmp, catalog, image, args.samples)
        print("\n3. GET /tasks page 256 (keyset paging):")
        print_table(["tasks", "view", "page_size", "p50 ms", "p95 ms"], rows)
        if len(sizes) > 1:
            for view in ("MINIMAL", "BASIC"):
                p = {r[0]: r[3] for r in rows if r[1] == view}
                print(f"   {view}: {sizes[-1]}/{sizes[0]} p50 ratio "
                      f"{p[sizes[-1]] / p[sizes[0]]:.2f}x")


if __name__ == "__main__":
    main()
