"""Data zones: staging an input from S3 and copying an output into quarantine (hashed while
it streams), each against the plain tool doing the same transfer.

Staging (one object of SIZE bytes in a real SeaweedFS, ``tests.s3_server.start_s3``):

  boto3 download_file   baseline: a plain boto3 client, ``download_file`` with the default
                        TransferConfig, to a local file.
  spe staging           ``LocalJobFiles().stage(S3Store(...), key, local)``: the
                        store's ``get_file`` (4 parts in flight, 8 MiB parts), then the size
                        check against a fresh HEAD, chmod 0444 and the rename into place.

Quarantine (a local output file of SIZE bytes, same filesystem as the quarantine):

  cp                    baseline: ``cp src dst``.
  cp + fsync            the same, then fsync of the copy (the store fsyncs before its rename).
  sha256 read only      ``hashlib.sha256`` over the file, no copy: the ceiling of any
                        one-pass copy-and-hash on this CPU.
  cp + sha256sum        what a user would do: ``cp src dst``, then ``sha256sum dst``.
  spe quarantine        ``DataService.quarantine`` (copy through ``HashingReader`` into a
                        ``FilesystemStore``; sha256 fed in a second thread, so hashing chunk
                        n overlaps writing chunk n and reading chunk n+1), at the store's
                        default chunk (1 MiB) and at larger ``chunk_size``s (``--chunks``).
  store.put, no hash    ``FilesystemStore.put`` of the bare file: the copy + fsync part alone.
  serial hash (before)  the copy through ``HashingReader`` without its thread: sha256 in the
                        caller's thread, as spe did before the overlap.

Parallel files (``--files N``, default 4: the source split into N files of SIZE/N):

  cp + sha256sum        baseline: ``cp`` and ``sha256sum`` of each file in turn.
  spe quarantine, P     ``DataService.quarantine`` of the N files with ``parallel_hashing``
                        P = 1 (one file at a time) and P = 2 (two at once, one per core).

Every measured operation runs in a fresh child interpreter (multiprocessing, spawn) that
times itself and reports its CPU time and peak RSS (``VmHWM``; for ``cp`` that of the ``cp``
process, sampled every 5 ms). Caches cannot be dropped without root, so all figures are
warm page cache (the object and the source file fit in RAM): before every operation the
previous outputs are deleted and ``sync`` flushes dirty pages, and the order of the
operations alternates between repeats (a b, b a, a b ...; the quarantine list forwards,
backwards ...). MB/s is 10^6 bytes per second; the medians over ``--repeat`` runs are
reported.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import boto3
from botocore.config import Config

from spe.adapters.jobfiles import LocalJobFiles
from spe.adapters.storage.filesystem import CHUNK, FilesystemStore
from spe.adapters.storage.s3 import S3Store
from spe.services.data import DataService, HashingReader

MIB = 1 << 20
BLOCK = 8 * MIB
CP_TIMEOUT = 3600
TARGET = 0.80
STAGING, QUARANTINE = "staging from S3", "hashing into quarantine"
PARALLEL = "parallel files"

# The child processes (spawn) import this module afresh: keep its top level light, so that
# the "RSS before" figure is the interpreter with boto3 and spe's storage code, no more.
# `_common` (uvicorn, the app) and `tests.s3_server` (pytest) are imported in main().


# -- operations, each run in a fresh child interpreter -----------------------------------

def _plain_client(p: dict[str, Any]) -> Any:
    return boto3.session.Session(
        aws_access_key_id=p["access_key"], aws_secret_access_key=p["secret_key"],
        region_name="us-east-1",
    ).client("s3", endpoint_url=p["endpoint"], config=Config(
        signature_version="s3v4", s3={"addressing_style": "path"}))


def _spe_s3_store(p: dict[str, Any]) -> S3Store:
    # as spe.adapters.storage.factory opens it: every tuning knob at its default
    return S3Store(p["bucket"], "", endpoint_url=p["endpoint"], access_key=p["access_key"],
                   secret_key=p["secret_key"])


def _op_boto3_download(p: dict[str, Any]) -> Callable[[], str]:
    client = _plain_client(p)
    client.head_bucket(Bucket=p["bucket"])  # connection set up outside the timing
    return lambda: client.download_file(p["bucket"], p["key"], p["dest"]) or ""


def _op_spe_stage(p: dict[str, Any]) -> Callable[[], str]:
    store = _spe_s3_store(p)
    store.client.head_bucket(Bucket=p["bucket"])
    return lambda: LocalJobFiles().stage(store, p["key"], Path(p["dest"])) or ""


def _op_cp(p: dict[str, Any]) -> Callable[[], str]:
    cp = shutil.which("cp") or "/bin/cp"

    def run() -> str:
        proc = subprocess.Popen([cp, p["src"], p["dst"]])
        deadline = time.monotonic() + CP_TIMEOUT
        while proc.poll() is None:  # cp's own peak RSS, sampled (see _hwm_kib)
            p["cp_hwm_kib"] = max(p.get("cp_hwm_kib", 0), _hwm_kib(str(proc.pid)))
            if time.monotonic() > deadline:
                proc.kill()
                raise subprocess.TimeoutExpired(proc.args, CP_TIMEOUT)
            time.sleep(0.005)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, proc.args)
        if p.get("fsync"):
            fd = os.open(p["dst"], os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return ""
    return run


def _op_sha256(p: dict[str, Any]) -> Callable[[], str]:
    def run() -> str:
        digest = hashlib.sha256()
        with Path(p["src"]).open("rb") as fh:
            while chunk := fh.read(p["chunk"]):
                digest.update(chunk)
        return digest.hexdigest()
    return run


def _fs_store(p: dict[str, Any]) -> FilesystemStore:
    return FilesystemStore(Path(p["qroot"]), chunk_size=p["chunk"])


def _op_spe_quarantine(p: dict[str, Any]) -> Callable[[], str]:
    store = _fs_store(p)
    # only `stores`, `quarantine_location` and `files` take part in quarantine()
    service = DataService(gate=cast(Any, None), stores=lambda _location: store,
                          audit=cast(Any, None), quarantine_location=lambda _p: p["qroot"],
                          files=LocalJobFiles())
    src = Path(p["src"])

    def run() -> str:
        (out,) = service.quarantine("bench", p["run_id"], src.parent, [Path(src.name)])
        return out.sha256
    return run


def _op_store_put(p: dict[str, Any]) -> Callable[[], str]:
    store = _fs_store(p)

    def run() -> str:
        with Path(p["src"]).open("rb") as fh:
            store.put(f"{p['run_id']}/out", fh)
        return ""
    return run


def _op_serial(p: dict[str, Any]) -> Callable[[], str]:
    store = _fs_store(p)

    def run() -> str:
        with Path(p["src"]).open("rb") as fh:
            reader = HashingReader(fh)  # no pool: sha256 in this thread, as before
            store.put(f"{p['run_id']}/out", reader)  # type: ignore[arg-type]
        return reader.hexdigest()
    return run


def _op_cp_sha256sum(p: dict[str, Any]) -> Callable[[], str]:
    cp = shutil.which("cp") or "/bin/cp"
    tool = shutil.which("sha256sum") or "/usr/bin/sha256sum"

    def run() -> str:
        digests = []
        for src, dst in zip(p["srcs"], p["dsts"], strict=True):
            subprocess.run([cp, src, dst], check=True, timeout=CP_TIMEOUT)
            out = subprocess.run([tool, dst], check=True, timeout=CP_TIMEOUT,
                                 capture_output=True, text=True).stdout
            digests.append(out.split()[0])
        return ",".join(digests)
    return run


def _op_spe_quarantine_files(p: dict[str, Any]) -> Callable[[], str]:
    store = _fs_store(p)
    service = DataService(gate=cast(Any, None), stores=lambda _location: store,
                          audit=cast(Any, None), quarantine_location=lambda _p: p["qroot"],
                          files=LocalJobFiles(), parallel_hashing=p["parallel"])
    srcs = [Path(s) for s in p["srcs"]]

    def run() -> str:
        out = service.quarantine("bench", p["run_id"], srcs[0].parent,
                                 [Path(s.name) for s in srcs])
        return ",".join(o.sha256 for o in out)
    return run


OPS: dict[str, Callable[[dict[str, Any]], Callable[[], str]]] = {
    "boto3_download": _op_boto3_download, "spe_stage": _op_spe_stage, "cp": _op_cp,
    "sha256": _op_sha256, "spe_quarantine": _op_spe_quarantine, "store_put": _op_store_put,
    "serial": _op_serial, "cp_sha256sum": _op_cp_sha256sum,
    "spe_quarantine_files": _op_spe_quarantine_files,
}


def _hwm_kib(pid: str = "self") -> int:
    """Peak RSS of a process in KiB (VmHWM). Not ``ru_maxrss``: Linux carries that over
    fork and exec, so a child would report its parent's size."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu() -> float:
    return sum(u.ru_utime + u.ru_stime for u in
               (resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_in_child(op: str, params: dict[str, Any]) -> dict[str, Any]:
    """Executed in the fresh child: prepare, then time one operation."""
    run = OPS[op](params)
    rss_before = _hwm_kib()
    cpu0, t0 = _cpu(), time.perf_counter()
    digest = run()
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if op == "cp":  # the work is done by the cp process: its peak, not the interpreter's
        rss_before, rss = 0, params.get("cp_hwm_kib", 0)
    else:
        rss = _hwm_kib()
    return {"elapsed": elapsed, "cpu": cpu, "rss_before_kib": rss_before, "rss_kib": rss,
            "sha256": digest}


# -- the parent: setup, schedule, report ---------------------------------------------------

@dataclass
class Variant:
    name: str
    group: str
    op: str
    params: dict[str, Any]
    baseline: str = ""  # the variant this one is compared with ("" for a baseline)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, what: str) -> float:
        return statistics.median(r[what] for r in self.runs)


@dataclass
class Bench:
    size: int
    work: Path
    source_sha256: str = ""
    log: list[str] = field(default_factory=list)

    def mbps(self, seconds: float) -> float:
        return self.size / seconds / 1e6

    def measure(self, variant: Variant, before: Callable[[], None],
                after: Callable[[dict[str, Any]], None]) -> None:
        before()
        os.sync()  # flush the previous operation's dirty pages outside any timing
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            result = pool.submit(run_in_child, variant.op, variant.params).result()
        after(result)
        variant.runs.append(result)
        self.log.append(variant.name)
        print(f"  {variant.name:<40} {self.mbps(result['elapsed']):8.1f} MB/s  "
              f"{result['elapsed']:7.2f} s  CPU {result['cpu']:6.2f} s  "
              f"peak RSS {result['rss_kib'] / 1024:6.1f} MiB", flush=True)


def make_source(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("wb") as out:
        left = size
        while left:
            block = rng.randbytes(min(BLOCK, left))
            out.write(block)
            left -= len(block)


def _amount(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n / 1024:g} KiB"


def same_bytes(a: Path, b: Path) -> bool:
    cmp = shutil.which("cmp") or "/usr/bin/cmp"
    return subprocess.run([cmp, "-s", str(a), str(b)], check=False,
                          timeout=CP_TIMEOUT).returncode == 0


def staging(bench: Bench, source: Path, repeat: int) -> list[Variant]:
    from tests.s3_server import start_s3  # noqa: PLC0415 (pytest: parent only)

    (bench.work / "s3").mkdir()
    server = start_s3(bench.work / "s3")
    try:
        print(f"SeaweedFS `weed mini` at {server.endpoint} "
              f"(started in {server.started_in:.1f} s)")
        bucket = server.make_bucket("spe-bench-data")
        p = {"endpoint": server.endpoint, "bucket": bucket, "key": "inputs/object.bin",
             "access_key": server.admin_keys.access_key,
             "secret_key": server.admin_keys.secret_key}
        t0 = time.perf_counter()
        with source.open("rb") as fh:
            _spe_s3_store(p).put(p["key"], fh)
        up = time.perf_counter() - t0
        print(f"upload of the object (S3Store.put, setup only): {up:.1f} s, "
              f"{bench.mbps(up):.0f} MB/s\n")
        staged = bench.work / "staged"
        staged.mkdir()
        bench.log.clear()
        base = Variant("boto3 download_file (baseline)", STAGING, "boto3_download",
                       {**p, "dest": str(staged / "boto3.bin")})
        ours = Variant("spe staging (LocalJobFiles.stage)", STAGING, "spe_stage",
                       {**p, "dest": str(staged / "spe.bin")}, baseline=base.name)
        for i in range(repeat):
            for v in (base, ours) if i % 2 == 0 else (ours, base):
                dest = Path(v.params["dest"])

                def check(_result: dict[str, Any], dest: Path = dest) -> None:
                    if not same_bytes(source, dest):
                        raise SystemExit(f"{dest} differs from the source")
                    dest.unlink()

                bench.measure(v, lambda dest=dest: dest.unlink(missing_ok=True), check)
        print(f"order: {' '.join('a' if n == base.name else 'b' for n in bench.log)}"
              "  (a = baseline, b = spe)")
    finally:
        server.stop()
        shutil.rmtree(bench.work / "s3", ignore_errors=True)
    return [base, ours]


def quarantine(bench: Bench, source: Path, repeat: int, chunks: list[int]) -> list[Variant]:
    qroot = bench.work / "quarantine"
    cp_dst = bench.work / "outbox-cp" / "out.bin"
    cp_dst.parent.mkdir()
    common = {"src": str(source), "qroot": str(qroot)}
    cp = Variant("cp (baseline)", QUARANTINE, "cp", {**common, "dst": str(cp_dst)})
    variants = [
        cp,
        Variant("cp + fsync", QUARANTINE, "cp", {**common, "dst": str(cp_dst), "fsync": True},
                baseline=cp.name),
        Variant("sha256 read only", QUARANTINE, "sha256", {**common, "chunk": CHUNK},
                baseline=cp.name),
        *(Variant(f"spe quarantine, chunk {_amount(c)}" + (" (default)" if c == CHUNK
                                                            else ""),
                  QUARANTINE, "spe_quarantine", {**common, "chunk": c}, baseline=cp.name)
          for c in chunks),
        Variant(f"store.put, no hash, {CHUNK // MIB} MiB", QUARANTINE, "store_put",
                {**common, "chunk": CHUNK}, baseline=cp.name),
        Variant(f"serial hash (before), {CHUNK // MIB} MiB", QUARANTINE, "serial",
                {**common, "chunk": CHUNK}, baseline=cp.name),
        Variant("cp + sha256sum", QUARANTINE, "cp_sha256sum",
                {**common, "srcs": [str(source)], "dsts": [str(cp_dst)]}, baseline=cp.name),
    ]

    def fresh(v: Variant) -> None:
        shutil.rmtree(qroot, ignore_errors=True)
        qroot.mkdir()
        cp_dst.unlink(missing_ok=True)
        v.params["run_id"] = uuid.uuid4().hex

    def check(v: Variant, result: dict[str, Any]) -> None:
        if result["sha256"] and result["sha256"] != bench.source_sha256:
            raise SystemExit(f"{v.name}: sha256 {result['sha256']} != the source's")
        copied = (cp_dst if v.op in ("cp", "cp_sha256sum") else
                  qroot / v.params["run_id"] / ("out" if v.op != "spe_quarantine"
                                                else source.name))
        if v.op != "sha256" and copied.stat().st_size != bench.size:
            raise SystemExit(f"{v.name}: the copy has the wrong size")

    bench.log.clear()
    for i in range(repeat):
        for v in variants if i % 2 == 0 else variants[::-1]:
            bench.measure(v, lambda v=v: fresh(v), lambda r, v=v: check(v, r))
    print("order: the list above forwards in repeats 1, 3, ..., backwards in 2, 4, ...")
    shutil.rmtree(qroot, ignore_errors=True)
    return variants


def split_source(source: Path, files: int, into: Path) -> list[Path]:
    """The source cut into ``files`` consecutive pieces (the last takes the remainder)."""
    into.mkdir()
    size = source.stat().st_size
    piece = size // files
    paths = []
    with source.open("rb") as src:
        for i in range(files):
            path = into / f"part{i}.bin"
            left = piece if i < files - 1 else size - piece * (files - 1)
            with path.open("wb") as out:
                while left:
                    block = src.read(min(BLOCK, left))
                    out.write(block)
                    left -= len(block)
            paths.append(path)
    return paths


def parallel_files(bench: Bench, source: Path, repeat: int, files: int) -> list[Variant]:
    srcs = split_source(source, files, bench.work / "files")
    want = [_op_sha256({"src": str(s), "chunk": CHUNK})() for s in srcs]
    qroot = bench.work / "quarantine-files"
    dsts = bench.work / "files-cp"
    dsts.mkdir()
    common = {"srcs": [str(s) for s in srcs], "qroot": str(qroot), "chunk": CHUNK,
              "dsts": [str(dsts / s.name) for s in srcs]}
    base = Variant(f"cp + sha256sum, {files} files (baseline)", PARALLEL, "cp_sha256sum",
                   common)
    variants = [base, *(Variant(f"spe quarantine, {files} files, {p} at once", PARALLEL,
                                "spe_quarantine_files", {**common, "parallel": p},
                                baseline=base.name) for p in (1, 2))]

    def fresh(v: Variant) -> None:
        shutil.rmtree(qroot, ignore_errors=True)
        qroot.mkdir()
        for d in common["dsts"]:
            Path(d).unlink(missing_ok=True)
        v.params["run_id"] = uuid.uuid4().hex

    def check(v: Variant, result: dict[str, Any]) -> None:
        if result["sha256"].split(",") != want:
            raise SystemExit(f"{v.name}: digests differ from the sources'")

    bench.log.clear()
    for i in range(repeat):
        for v in variants if i % 2 == 0 else variants[::-1]:
            bench.measure(v, lambda v=v: fresh(v), lambda r, v=v: check(v, r))
    shutil.rmtree(qroot, ignore_errors=True)
    return variants


def report(bench: Bench, variants: list[Variant], print_table: Callable[..., None]) -> None:
    by_name = {v.name: v for v in variants}

    def ratio(v: Variant, ref: Variant, what: str) -> float:
        return ref.median(what) / v.median(what)  # > 1: v is faster / cheaper than ref

    rows = []
    for v in variants:
        base = by_name.get(v.baseline)
        speeds = sorted(bench.mbps(r["elapsed"]) for r in v.runs)
        before = max(r["rss_before_kib"] for r in v.runs) / 1024
        rows.append((
            {STAGING: "staging", QUARANTINE: "quarantine"}.get(v.group, "files"), v.name,
            round(bench.mbps(v.median("elapsed")), 1), f"{speeds[0]:.0f}-{speeds[-1]:.0f}",
            f"{ratio(v, base, 'elapsed'):.2f}" if base else "baseline",
            round(v.median("cpu"), 2), round(bench.size / v.median("cpu") / 1e6, 1),
            f"{ratio(v, base, 'cpu'):.2f}" if base else "baseline",
            round(max(r["rss_kib"] for r in v.runs) / 1024, 1),
            round(before, 1) if before else "-"))
    print_table(("group", "operation", "MB/s (median)", "range", "ratio", "CPU s",
                 "MB/CPU-s", "CPU ratio", "peak RSS MiB", "RSS before op MiB"), rows)
    print("ratio: the baseline's median time / this one's (>= 1 is as fast or faster); "
          "CPU ratio: the same with CPU seconds (user + system, children included)\n")
    for group in (STAGING, QUARANTINE):
        members = [v for v in variants if v.group == group]
        if not members:
            continue
        base = next(v for v in members if not v.baseline)
        ours = next((v for v in members if v.op == "spe_stage"
                     or (v.op == "spe_quarantine" and v.params.get("chunk") == CHUNK)),
                    next(v for v in members if v.baseline))
        wall = ratio(ours, base, "elapsed")
        print(f"{group}: {ours.name} / {base.name} = {wall:.2f} "
              f"(target >= {TARGET:.2f}: {'met' if wall >= TARGET else 'NOT met'}); "
              f"CPU {ratio(ours, base, 'cpu'):.2f}")
    for other in ("cp + fsync", "sha256 read only", "cp + sha256sum"):
        ref = by_name.get(other)
        if ref is None:
            continue
        for v in variants:
            if v.op in ("spe_quarantine", "serial"):
                print(f"  {v.name} / {other} = {ratio(v, ref, 'elapsed'):.2f} "
                      f"(CPU {ratio(v, ref, 'cpu'):.2f})")
    files = [v for v in variants if v.group == PARALLEL]
    if files:
        one, two = (by_name[v.name] for v in files[1:3])
        print(f"parallel files: {two.name} / {one.name} = {ratio(two, one, 'elapsed'):.2f} "
              f"(target >= 1.70); against {files[0].name}: "
              f"{ratio(one, files[0], 'elapsed'):.2f} and {ratio(two, files[0], 'elapsed'):.2f}")
    worst = max(r["rss_kib"] for v in variants for r in v.runs) / 1024
    print(f"largest peak RSS of any operation: {worst:.1f} MiB "
          f"= {worst * MIB / bench.size:.2%} of SIZE ({bench.size / MIB:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=float, default=2.0,
                        help="size of the object and of the output file (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per operation (default 3)")
    parser.add_argument("--chunks", default="1,8",
                        help="FilesystemStore chunk sizes in MiB for spe quarantine "
                             "(default 1,8; 1 is the store's default)")
    parser.add_argument("--seed", type=int, default=20260101, help="data generator seed")
    parser.add_argument("--files", type=int, default=4,
                        help="output files of the parallel-files part (default 4)")
    parser.add_argument("--skip", choices=("staging", "quarantine", "files"), action="append",
                        default=[], help="leave a part out (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.repeat < 1 or args.size_gib <= 0:
        parser.error("--repeat and --size-gib must be positive")
    chunks = [int(float(c) * MIB) for c in args.chunks.split(",")]
    size = int(args.size_gib * (1 << 30))

    # imported here, not at the top: the spawned children need none of it
    from _common import CpuWatch, print_machine, print_table, scratch_dir  # noqa: PLC0415

    print_machine("spe data zones: staging from S3, hashing into quarantine")
    print(f"SIZE {size} bytes ({size / MIB:.0f} MiB), {args.repeat} repeats, seed "
          f"{args.seed}, boto3 {boto3.__version__}\n")
    with scratch_dir("spe-bench-data-", keep=args.keep) as work:
        free = shutil.disk_usage(work).free
        if free < 4 * size:
            print(f"warning: only {free / 2**30:.1f} GiB free in {work}; "
                  f"about {4 * size / 2**30:.1f} GiB are needed", file=sys.stderr)
        bench = Bench(size=size, work=work)
        source = work / "outputs" / "out.bin"
        source.parent.mkdir()
        t0 = time.perf_counter()
        make_source(source, size, args.seed)
        print(f"source file generated in {time.perf_counter() - t0:.1f} s "
              f"(random.Random({args.seed}).randbytes, 8 MiB blocks)")
        t0 = time.perf_counter()
        bench.source_sha256 = _op_sha256({"src": str(source), "chunk": CHUNK})()
        print(f"its sha256 {bench.source_sha256} ({time.perf_counter() - t0:.1f} s)\n")
        variants: list[Variant] = []
        if "staging" not in args.skip:
            print(f"-- {STAGING} --")
            watch = CpuWatch()
            variants += staging(bench, source, args.repeat)
            print(watch.report() + "\n")
        if "quarantine" not in args.skip:
            print(f"-- {QUARANTINE} --")
            watch = CpuWatch()
            variants += quarantine(bench, source, args.repeat, chunks)
            print(watch.report() + "\n")
        if "files" not in args.skip:
            print(f"-- {PARALLEL} --")
            watch = CpuWatch()
            variants += parallel_files(bench, source, args.repeat, args.files)
            print(watch.report() + "\n")
        if variants:
            report(bench, variants, print_table)


if __name__ == "__main__":
    main()
