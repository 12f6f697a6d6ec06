"""Resident memory of the Celery deployment's processes, idle.

Starts a throw-away Redis (`scripts/redis.sh`), a real `spe serve` with
SPE_DISPATCHER=celery and one `spe worker` (executor local, SQLite in a scratch SPE_HOME),
then, after --settle seconds of idleness, samples each process with psutil every 0.5 s
for --samples samples: RSS (resident set, shared pages included) and USS (memory unique
to the process, what it costs to add one). Measured twice: right after start-up, and
again idle after one tiny workflow (`sleepy`, seconds=0) went through, when the request
and step code paths have been imported. For comparison, the embedded default's
`spe serve` (inline dispatcher, worker threads in the API) is measured the same way.

    .venv/bin/python benchmarks/bench_celery.py [--settle 3] [--samples 6] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psutil
from _common import build_catalog, print_machine, print_table, scratch_dir

from tests.celery.cluster import Cluster
from tests.helpers import Api, Server
from tests.redis_server import start_redis

MIB = 2**20


def sample(pid: int, settle: float, samples: int) -> tuple[float, float]:
    """Median RSS and USS (MiB) of ``pid`` after ``settle`` idle seconds."""
    proc = psutil.Process(pid)
    time.sleep(settle)
    rss, uss = [], []
    for _ in range(samples):
        info = proc.memory_full_info()
        rss.append(info.rss / MIB)
        uss.append(info.uss / MIB)
        time.sleep(0.5)
    return statistics.median(rss), statistics.median(uss)


def one_run(api: Api) -> None:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    if api.wait(run_id, timeout=120) != "COMPLETE":
        sys.exit(f"run {run_id} did not complete")


def measure_celery(root: Path, catalog: Path, args: argparse.Namespace) -> list[list[object]]:
    redis = start_redis(root / "redis")
    rows: list[list[object]] = []
    try:
        with Cluster(root / "celery", catalog, redis, db=0) as cluster:
            worker = cluster.start_worker(concurrency=args.concurrency)
            procs = {"spe serve (dispatcher=celery)": cluster.server.proc,
                     f"spe worker --concurrency {args.concurrency}": worker}
            for phase in ("after start-up", "after one run"):
                if phase == "after one run":
                    one_run(cluster.server.api("bench"))
                for name, proc in procs.items():
                    assert proc is not None
                    rss, uss = sample(proc.pid, args.settle, args.samples)
                    rows.append([name, phase, rss, uss])
            redis_rss, redis_uss = sample(_redis_pid(redis.root), 0, args.samples)
            rows.append(["redis-server (empty)", "after one run", redis_rss, redis_uss])
    finally:
        redis.stop()
    return rows


def _redis_pid(root: Path) -> int:
    return int((root / "redis.pid").read_text())


def measure_inline(root: Path, catalog: Path, args: argparse.Namespace) -> list[list[object]]:
    server = Server(home=root / "inline", catalog=catalog).start()
    rows: list[list[object]] = []
    try:
        assert server.proc is not None
        for phase in ("after start-up", "after one run"):
            if phase == "after one run":
                one_run(server.api("bench"))
            rss, uss = sample(server.proc.pid, args.settle, args.samples)
            rows.append(["spe serve (dispatcher=inline)", phase, rss, uss])
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds first")
    parser.add_argument("--samples", type=int, default=6, help="samples, 0.5 s apart")
    parser.add_argument("--concurrency", type=int, default=2, help="worker threads")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--only", choices=("celery", "inline"), default="",
                        help="measure one deployment only (inline needs no Redis)")
    args = parser.parse_args()
    print_machine("idle memory of the Celery deployment")
    with scratch_dir("spe-bench-celery-", args.keep) as root:
        catalog = build_catalog(root / "catalog")
        rows = [] if args.only == "inline" else measure_celery(root, catalog, args)
        if args.only != "celery":
            rows += measure_inline(root, catalog, args)
    print_table(["process", "idle", "RSS MiB", "USS MiB"], rows)


if __name__ == "__main__":
    main()
