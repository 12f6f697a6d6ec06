"""One tiny workflow end to end on SLURM against the same workflow run locally (root needed).

Workflow: the `sleepy` test workflow with {"seconds": 0} (three trivial rules: first, nap,
finish; a fourth, `all`, only gathers).

  direct   bare snakemake on this machine, the argv the service builds (bench_overhead.py)
  local    a real `spe serve` with the local executor
  slurm:*  a real `spe serve` with the SLURM executor on the single-node cluster of
           scripts/slurm.sh, one server per variant (its SPE_* settings, see --variant)

Each WES figure is POST /runs -> COMPLETE seen by a client polling the status every
--poll seconds. Configurations are interleaved (direct, local, every SLURM variant, then
again) so that background load hits all alike; the ratio SLURM/local is within one run.

For SLURM the run's files split the time: ``sbatch`` POST -> head job accepted
(handle.json), ``queue`` accepted -> head job started (the job script's slurm_job_id),
``engine`` started -> engine exited (exit_status), ``detect`` exited -> COMPLETE seen.

Every use of the cluster holds /tmp/spe-slurm.lock (the machine's one cluster is shared).

Usage: .venv/bin/python benchmarks/bench_slurm_e2e.py [-r 3]
       [--variant 'head:SPE_SLURM_RULE_JOBS=in_head_job']
       [--variant 'wait5:SPE_SLURM_STATUS_INIT_SECONDS=5'] ...
Nothing is asserted about speed."""

from __future__ import annotations

import argparse
import fcntl
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from _common import (
    WES,
    CpuWatch,
    build_catalog,
    poll_until_complete,
    print_machine,
    print_table,
    scratch_dir,
)
from bench_overhead import Direct

from spe.domain.jobdir import JobDir
from tests.helpers import Server
from tests.slurm.conftest import slurm_server
from tests.slurm_cluster import SlurmCluster, slurm_or_skip, stop_if_started

PARAMS = {"seconds": 0}
LOCK = Path("/tmp/spe-slurm.lock")  # noqa: S108 (the lock every SLURM user on this machine takes)


@contextmanager
def cluster_lock() -> Iterator[None]:
    with LOCK.open("a") as fh:
        print(f"waiting for {LOCK} ...", flush=True)
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Through:
    """A real `spe serve` and one client that submits and polls its status."""

    def __init__(self, name: str, server: Server, user: str, poll: float,
                 timeout: float) -> None:
        self.name, self.poll, self.timeout = name, poll, timeout
        self.server = server.start()
        self.api = self.server.api(user)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.api.token}"

    def run(self) -> dict[str, float]:
        wall0, t0 = time.time(), time.perf_counter()
        run_id = self.api.run_id(self.api.submit("sleepy", PARAMS))
        now, wall = poll_until_complete(
            self.session, f"{self.server.url}{WES}/runs/{run_id}/status", started=t0,
            timeout=self.timeout, poll=self.poll, server=self.server, name=self.name)
        job = JobDir(self.server.home / "runs" / run_id)
        accepted, exited = job.handle.stat().st_mtime, job.exit_status.stat().st_mtime
        started = job.slurm_job_id.stat().st_mtime if job.slurm_job_id.exists() else accepted
        return {"total": now - t0, "sbatch": accepted - wall0, "queue": started - accepted,
                "engine": exited - started, "detect": wall - exited,
                "rule_jobs": float(rule_jobs(job.stderr))}

    def stop(self) -> None:
        self.session.close()
        self.server.stop()


def rule_jobs(stderr: Path) -> int:
    """How many SLURM jobs the engine submitted (snakemake's own log says so)."""
    try:
        text = stderr.read_text(errors="replace")
    except OSError:
        return 0
    return text.count("has been submitted with SLURM jobid")


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    env = dict(kv.split("=", 1) for kv in rest.split(",") if kv.strip())
    if not name or any(not k.startswith("SPE_") for k in env):
        raise SystemExit(f"--variant NAME[:SPE_X=V,...], not {text!r}")
    return name, env


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--repeats", type=int, default=3, help="timed runs each")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs each first")
    parser.add_argument("--poll", type=float, default=0.05, help="client status poll, s")
    parser.add_argument("--variant", action="append", default=[],
                        help="a SLURM server: NAME[:SPE_SETTING=VALUE,...] (repeatable; "
                        "default: one server with the default settings)")
    parser.add_argument("--reconcile", default="1.0",
                        help="SPE_RECONCILE_SECONDS of every server (default 1.0, the "
                        "service default)")
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]
    rng = random.Random(args.seed)
    with cluster_lock(), scratch_dir("spe-bench-slurm-e2e-", args.keep) as tmp:
        tmp.chmod(0o711)  # the researchers' jobs pass through to their run directory
        cluster = slurm_or_skip()
        try:
            figures = measure(args, variants, cluster, tmp, rng)
        finally:
            subprocess.run(["/usr/bin/scancel", "-u", "spe-alice"], check=False, timeout=30)
            stop_if_started()
    report(figures, variants)


def measure(args: argparse.Namespace, variants: list[tuple[str, dict[str, str]]],
            cluster: SlurmCluster, tmp: Path, rng: random.Random
            ) -> dict[str, list[dict[str, float]]]:
    catalog = build_catalog(tmp / "catalog")
    print_machine("bench_slurm_e2e: sleepy {seconds: 0}, local vs SLURM, through WES")
    slurmctld = subprocess.run(["/usr/bin/scontrol", "show", "config"], capture_output=True,
                               text=True, timeout=30, check=False).stdout
    for line in slurmctld.splitlines():
        if line.startswith(("SchedulerParameters", "SchedulerType", "SLURM_VERSION")):
            print("cluster:", " ".join(line.split()))
    print(f"repeats: {args.repeats} (+{args.warmup} warm-up), interleaved; client polls "
          f"every {args.poll} s; SPE_RECONCILE_SECONDS={args.reconcile}\n")
    watch = CpuWatch()
    direct = Direct(catalog, tmp)
    common = {"SPE_RECONCILE_SECONDS": args.reconcile}
    servers: list[Through] = []
    try:
        servers.append(Through("local", Server(home=tmp / "local", catalog=catalog,
                                               env_extra=common), "bench", args.poll, 120))
        for name, env in variants:
            server = slurm_server(tmp / f"slurm-{name}", catalog, cluster,
                                  SPE_SLURM_MAX_TIME_MINUTES="10", **common, **env)
            servers.append(Through(f"slurm:{name}", server, "alice", args.poll, 300))
        figures: dict[str, list[dict[str, float]]] = {"direct": []}
        figures.update({s.name: [] for s in servers})
        for i in range(args.warmup + args.repeats):
            timed = i >= args.warmup
            t = direct.run()
            if timed:
                figures["direct"].append({"total": t})
            for srv in rng.sample(servers, len(servers)):  # no fixed order within a round
                sample = srv.run()
                print(f"  {'run' if timed else 'warm-up'} {srv.name}: {sample['total']:.2f} s"
                      f" ({sample['rule_jobs']:.0f} rule jobs on SLURM)")
                if timed:
                    figures[srv.name].append(sample)
    finally:
        for srv in servers:
            srv.stop()
    print("\n" + watch.report() + "\n")
    return figures


def report(figures: dict[str, list[dict[str, float]]],
           variants: list[tuple[str, dict[str, str]]]) -> None:
    med = statistics.median
    local = med(s["total"] for s in figures["local"])
    rows = []
    for name, samples in figures.items():
        col = {k: [s[k] for s in samples] for k in samples[0]}
        m = med(col["total"])
        stage = [f"{med(col[k]):.2f}" if k in col else "-"
                 for k in ("sbatch", "queue", "engine", "detect")]
        jobs = f"{med(col['rule_jobs']):.0f}" if "rule_jobs" in col else "-"
        rows.append([name, m, min(col["total"]), max(col["total"]), *stage, jobs,
                     f"{m / local:.2f}x"])
    print_table(["configuration", "median s", "min s", "max s", "sbatch s", "queue s",
                 "engine s", "detect s", "SLURM jobs", "/ local"], rows)
    print("sbatch: POST -> head job accepted; queue: accepted -> head job started (local: 0); "
          "engine: started -> engine exited; detect: exited -> COMPLETE seen. Medians.")
    for name, env in variants:
        print(f"slurm:{name}: {', '.join(f'{k}={v}' for k, v in env.items()) or 'defaults'}")


if __name__ == "__main__":
    main()
