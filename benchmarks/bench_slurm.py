"""The SLURM path, measured on the single-node cluster of scripts/slurm.sh (root needed).

1. Latency from ``POST /runs`` to the run's head job being accepted by ``sbatch`` (the
   ``handle.json`` the executor writes right after sbatch returns), one run at a time,
   with the in-process worker and with Celery workers on Redis.
2. Drain rate: N runs queued while no worker runs, then W Celery workers started: queued
   runs per second turned into SLURM jobs (N-1 over the time from the first handle
   written to the last).
3. Resident memory of the API process and of one worker process, idle and after the batch.

Usage: .venv/bin/python benchmarks/bench_slurm.py [--runs 40] [--latency-runs 15]
       [--workers 1 2]     (--latency-runs 0: the drain and memory figures only)
Jobs are cancelled after each measurement; nothing is asserted about speed."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import build_catalog, percentile, print_machine, print_table

from tests.celery.cluster import Cluster
from tests.helpers import FINAL, WES, Api, Server
from tests.redis_server import start_redis
from tests.slurm.conftest import slurm_server
from tests.slurm_cluster import SlurmCluster, slurm_or_skip

PARAMS = {"seconds": 1}


def handle_file(home: Path, run_id: str) -> Path:
    return home / "runs" / run_id / "handle.json"


def handle_times(home: Path, run_ids: list[str]) -> list[float]:
    return sorted(handle_file(home, r).stat().st_mtime for r in run_ids)


def wait_handles(home: Path, run_ids: list[str], timeout: float = 300) -> float:
    """Wait until every run has a handle; return the newest handle's mtime."""
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        pending = {r for r in pending if not handle_file(home, r).exists()}
        time.sleep(0.005)
    if pending:
        raise RuntimeError(f"{len(pending)} runs never reached SLURM")
    return max(handle_file(home, r).stat().st_mtime for r in run_ids)


def cancel_all() -> None:
    subprocess.run(["/usr/bin/scancel", "-u", "spe-alice"], check=False, timeout=30)


def latency(api: Api, home: Path, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.time()
        run_id = api.run_id(api.submit("sleepy", PARAMS))
        samples.append(wait_handles(home, [run_id]) - t0)
        api.wait(run_id, timeout=120)
    return samples


def states(api: Api, run_ids: list[str], timeout: float = 300) -> None:
    """Wait until every run has a final state (after its job was cancelled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(api.get(f"{WES}/runs/{r}/status").json()["state"] in FINAL for r in run_ids):
            return
        time.sleep(0.5)
    raise RuntimeError("runs did not end after their jobs were cancelled")


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def inline_latency(cluster: SlurmCluster, root: Path, catalog: Path, n: int) -> list[float]:
    server = slurm_server(root / "inline", catalog, cluster,
                          SPE_RECONCILE_SECONDS="0.2").start()
    try:
        return latency(server.api("alice"), server.home, n)
    finally:
        server.stop()
        cancel_all()


def celery_figures(cluster: SlurmCluster, root: Path, catalog: Path, args: argparse.Namespace
                   ) -> tuple[list[float], dict[int, float], dict[str, float]]:
    redis = start_redis(root / "redis")
    probe = slurm_server(root / "probe", catalog, cluster)
    env = {k: v for k, v in probe.env_extra.items() if k.startswith("SPE_") and k not in
           ("SPE_RECONCILE_SECONDS",)}
    env["SPE_MAX_ACTIVE_RUNS"] = "1000"
    drain: dict[int, float] = {}
    memory: dict[str, float] = {}
    try:
        for i, workers in enumerate(args.workers):
            (root / f"celery{i}").mkdir()
            (root / f"celery{i}" / "policy.yaml").write_text(
                (root / "probe" / "policy.yaml").read_text())
            with Cluster(root / f"celery{i}", catalog, redis, db=i, env=env) as c:
                api = c.server.api("alice")
                run_ids = [api.run_id(api.submit("sleepy", PARAMS)) for _ in range(args.runs)]
                if i == 0:
                    memory["api idle (after submissions)"] = rss_mb(_pid(c.server))
                procs = [c.start_worker(concurrency=2) for _ in range(workers)]
                wait_handles(c.home, run_ids)
                times = handle_times(c.home, run_ids)  # first to last sbatch accepted
                drain[workers] = (len(times) - 1) / (times[-1] - times[0])
                cancel_all()  # 30 head jobs would hold every CPU their rule jobs need
                states(api, run_ids)
                if i == 0:
                    memory["worker after the batch"] = rss_mb(procs[0].pid)
                    lat = latency(api, c.home, args.latency_runs) if args.latency_runs else []
        return lat, drain, memory
    finally:
        redis.stop()


def _pid(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--latency-runs", type=int, default=15)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cluster = slurm_or_skip()
    root = Path(tempfile.mkdtemp(prefix="spe-bench-slurm-", dir="/var/tmp"))
    root.chmod(0o711)
    try:
        catalog = build_catalog(root / "catalog")
        print_machine("SLURM path (single-node Slurm 22.05 on this machine)")
        inline = inline_latency(cluster, root, catalog, args.latency_runs) \
            if args.latency_runs else []
        celery, drain, memory = celery_figures(cluster, root, catalog, args)
        rows = [[name, f"{percentile(s, 50) * 1000:.0f}", f"{percentile(s, 90) * 1000:.0f}",
                 str(len(s))] for name, s in (("inline worker", inline),
                                              ("celery worker", celery))]
        print("POST /runs -> head job accepted by sbatch (ms)")
        print_table(["dispatcher", "p50", "p90", "runs"], rows)
        print(f"drain: {args.runs} queued runs into SLURM")
        print_table(["celery workers (concurrency 2)", "runs/s"],
                    [[str(w), f"{r:.1f}"] for w, r in drain.items()])
        print("resident memory (MiB)")
        print_table(["process", "RSS"], [[k, f"{v:.0f}"] for k, v in memory.items()])
    finally:
        cancel_all()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
