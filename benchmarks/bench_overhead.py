"""End-to-end overhead of one tiny workflow through WES against running snakemake directly.

Workflow: the `sleepy` test workflow with {"seconds": 0} (three trivial jobs).

  direct  copy the bundle to a fresh directory, write params.json and run the exact argv
          the service builds (`SnakemakeEngine.argv`, the entry's default engine options)
          with the minimal environment the local executor gives its runs; time all of it.
  WES     a real `spe serve` process (`tests.helpers.Server`), once per reconcile interval
          (SPE_RECONCILE_SECONDS, default 1.0 and 0.2); time from POST /runs until GET
          /runs/{id}/status, polled every --poll seconds, says COMPLETE.

The service starts a run as soon as it is dispatched (QUEUED -> RUNNING without waiting).
The local executor tells the reconciler when the engine exits, so the end is noticed at
once; without that notice (before it, or when it is lost) the end waits for the next tick
of the reconciler, on average half an interval (up to a whole one).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import psutil
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

from spe.adapters.catalog import load_catalog
from spe.adapters.engines.snakemake import SnakemakeEngine
from spe.adapters.executors.local import _base_env
from spe.config import Settings
from spe.domain.jobdir import JobDir
from spe.domain.ports import ExecutionSpec
from tests.helpers import Server

WORKFLOW = "sleepy@1.0.0"
PARAMS = {"seconds": 0}


class Direct:
    """Runs the engine the way the service would, without the service."""

    def __init__(self, catalog: Path, base: Path) -> None:
        cat, bundles = load_catalog(catalog)
        self.entry = cat.resolve(WORKFLOW)
        self.bundle = bundles[self.entry.ref]
        self.engine = SnakemakeEngine(Settings(home=base / "unused",
                                               catalog_dir=catalog).snakemake_bin)
        self.options = {o.name: o.default for o in self.entry.engine_options}
        self.base = base
        self.count = 0

    def run(self) -> float:
        self.count += 1
        workdir = self.base / f"direct-{self.count}"
        t0 = time.perf_counter()
        bundle_dir = workdir / "workflow"
        shutil.copytree(self.bundle, bundle_dir,
                        ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
        (workdir / "logs").mkdir()
        params_file = workdir / "params.json"
        params_file.write_text(json.dumps(PARAMS, indent=2))
        argv = self.engine.argv(self.entry, bundle_dir, params_file, workdir, self.options)
        spec = ExecutionSpec(run_id=f"direct-{self.count}", argv=tuple(argv), workdir=workdir,
                             stdout=workdir / "logs/stdout.log",
                             stderr=workdir / "logs/stderr.log")
        with spec.stdout.open("wb") as out, spec.stderr.open("wb") as err:
            code = subprocess.run(argv, cwd=workdir, env=_base_env(spec), stdout=out,
                                  stderr=err, stdin=subprocess.DEVNULL, check=False).returncode
        elapsed = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"direct snakemake failed ({code}); see {spec.stderr}: "
                             f"{spec.stderr.read_text()[-2000:]}")
        if self.count == 1:
            print("direct argv: " + " ".join(argv))
        return elapsed


class ThroughWes:
    """A real `spe serve` with one reconcile interval, and one client that submits and
    polls. ``run`` returns, in seconds: ``total`` POST -> COMPLETE seen, ``post`` the POST
    itself, and from the run's work directory's file times: ``start`` POST -> engine
    spawned (handle.json written), ``engine`` spawned -> engine exited (exit_status written
    by the runner), ``detect`` engine exited -> COMPLETE seen by the client, and ``cpu``
    the CPU seconds the server process itself used meanwhile (its threads: serving the
    POST and the polls, the worker, the reconciler; not the engine's processes)."""

    def __init__(self, catalog: Path, home: Path, interval: float, poll: float,
                 rng: random.Random) -> None:
        self.home, self.poll, self.interval, self.rng = home, poll, interval, rng
        self.server = Server(home=home, catalog=catalog,
                             env_extra={"SPE_RECONCILE_SECONDS": str(interval)}).start()
        self.api = self.server.api("bench")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.api.token}"

    def run(self) -> dict[str, float]:
        # an untimed pause at a random phase of the reconciler's tick: back-to-back runs
        # would otherwise always start just after a tick and end at the same phase
        time.sleep(self.rng.uniform(0, self.interval))
        server = psutil.Process(self.server.proc.pid if self.server.proc else 0)
        cpu0 = server.cpu_times()
        wall0, t0 = time.time(), time.perf_counter()
        run_id = self.api.run_id(self.api.submit("sleepy", PARAMS))
        t_post = time.perf_counter()
        now, wall = poll_until_complete(
            self.session, f"{self.server.url}{WES}/runs/{run_id}/status", started=t0,
            timeout=120, poll=self.poll, server=self.server)
        cpu1 = server.cpu_times()
        workdir = self.home / "runs" / run_id
        spawned = JobDir(workdir).handle.stat().st_mtime
        exited = JobDir(workdir).exit_status.stat().st_mtime
        return {"total": now - t0, "post": t_post - t0, "start": spawned - wall0,
                "engine": exited - spawned, "detect": wall - exited,
                "cpu": cpu1.user + cpu1.system - cpu0.user - cpu0.system}

    def stop(self) -> None:
        self.session.close()
        self.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--repeats", type=int, default=5,
                        help="timed runs per configuration (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs per configuration first (default 1)")
    parser.add_argument("--intervals", default="1.0,0.2",
                        help="SPE_RECONCILE_SECONDS values, comma-separated (default 1.0,0.2)")
    parser.add_argument("--poll", type=float, default=0.05,
                        help="status polling interval of the client in seconds (default 0.05)")
    parser.add_argument("--seed", type=int, default=20260101,
                        help="seed of the random pause before each WES submission")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args()
    intervals = [float(s) for s in args.intervals.split(",") if s.strip()]

    print_machine("bench_overhead: sleepy {seconds: 0} through WES vs snakemake directly")
    print(f"repeats: {args.repeats} (+{args.warmup} warm-up) of each configuration, "
          f"interleaved; reconcile intervals: {intervals} (all servers up at once); each "
          f"submission after a random pause in [0, interval) (seed {args.seed}); the client "
          f"polls status every {args.poll} s\n")

    rng = random.Random(args.seed)
    watch = CpuWatch()
    with scratch_dir("spe-bench-overhead-", args.keep) as tmp:
        catalog = build_catalog(tmp / "catalog")
        direct_runner = Direct(catalog, tmp)
        servers: dict[float, ThroughWes] = {}
        try:
            for iv in intervals:
                servers[iv] = ThroughWes(catalog, tmp / f"home-{iv:g}", iv, args.poll, rng)
            for _ in range(args.warmup):  # the first run also probes `snakemake --version`
                direct_runner.run()
                for srv in servers.values():
                    srv.run()
            # interleaved, so that drift and background load hit every configuration alike
            direct: list[float] = []
            wes: dict[float, list[dict[str, float]]] = {iv: [] for iv in intervals}
            for _ in range(args.repeats):
                direct.append(direct_runner.run())
                for iv, srv in servers.items():
                    wes[iv].append(srv.run())
        finally:
            for srv in servers.values():
                srv.stop()
    print()
    print(watch.report() + "\n")

    med = statistics.median
    d = med(direct)
    rows = [["direct snakemake", d, min(direct), max(direct), "-", "-", "-", f"{d:.2f}", "-",
             "-", "1.00x", "-"]]
    summary = []
    for iv, runs in wes.items():
        col = {k: [r[k] for r in runs] for k in runs[0]}
        m = med(col["total"])
        rows.append([f"WES, reconcile {iv:g} s", m, min(col["total"]), max(col["total"]),
                     f"{med(col['post']) * 1000:.0f}", f"{med(col['start']):.2f}",
                     f"{med(col['detect']):.2f}", f"{med(col['engine']):.2f}",
                     f"{m - d:.2f}", f"{(m - d) / iv:.2f}", f"{m / d:.2f}x",
                     f"{med(col['cpu']):.2f}"])
        summary.append(f"reconcile {iv:g} s: overhead {m - d:.2f} s ~ "
                       f"{med(col['detect']):.2f} s until the reconciler noticed the end + "
                       f"{med(col['start']):.2f} s to start the engine + "
                       f"{med(col['engine']) - d:+.2f} s engine time vs direct")
    print_table(["configuration", "median s", "min s", "max s", "POST ms", "start s",
                 "detect s", "engine s", "overhead s", "overhead/interval", "WES/direct",
                 "server CPU s"],
                rows)
    print("start: POST -> engine spawned; engine: spawned -> exited (runner wrapper "
          "included); detect: exited -> COMPLETE seen; server CPU: the server process's own "
          "CPU from the POST to COMPLETE seen; medians over the timed runs.")
    for line in summary:
        print(line)
    print("detect is how soon the end was noticed: at once (a few hundredths of a second) "
          "when the executor tells the reconciler (the local executor's end notice), else at "
          "the reconciler's next tick (on average half an interval). The rest is the engine "
          "itself taking longer beside a running server than alone (engine against direct).")


if __name__ == "__main__":
    main()
