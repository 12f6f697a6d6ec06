"""Data zones: authorising a run's input references, staging them read-only into the run
directory, copying outputs into the project's quarantine (hashed while streaming), and
purging a run's data.

Inputs from the shared filesystem are linked (the dataset's own permissions keep them
read-only); inputs in S3 are downloaded in parallel, their size verified, and made
read-only. No API path reads quarantine bytes: only the airlock may, and it writes the
outbox."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from spe.domain.catalog import WorkflowEntry
from spe.domain.data_refs import DataRef, parse_refs, set_pointer
from spe.domain.errors import Forbidden, InvalidRequest
from spe.domain.jobdir import LOG_STREAMS, JobDir, quarantined_log
from spe.domain.models import AuditEvent, OutputFile, Principal
from spe.domain.ports import AuditLog, JobFiles, ObjectStore
from spe.services.access import Gate

StoreFactory = Callable[[str], ObjectStore]
OVERLAP_MIN_BYTES = 64 * 1024  # smaller chunks are hashed inline: a hand-off costs more


class HashingReader:
    """Wraps a binary file: every byte read is also fed to sha256 and counted.

    With a ``pool``, a chunk is hashed in the pool's thread while the caller writes it and
    reads the next one (hashlib releases the GIL on buffers over 2 KiB), so copying and
    hashing overlap. One chunk at most is being hashed: memory stays at two chunks, and
    the chunks reach sha256 in order. Call ``hexdigest`` (or ``finish``) when done."""

    def __init__(self, raw: BinaryIO, pool: ThreadPoolExecutor | None = None) -> None:
        self._raw = raw
        self._pool = pool
        self._pending: Future[None] | None = None
        self._lock = threading.Lock()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        with self._lock:
            self._finish()
            if self._pool is not None and len(chunk) >= OVERLAP_MIN_BYTES:
                self._pending = self._pool.submit(self.sha256.update, chunk)
            else:
                self.sha256.update(chunk)
            self.size += len(chunk)
        return chunk

    def _finish(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def finish(self) -> None:
        with self._lock:
            self._finish()

    def hexdigest(self) -> str:
        self.finish()
        return self.sha256.hexdigest()


@dataclass
class DataService:
    gate: Gate
    stores: StoreFactory
    audit: AuditLog
    quarantine_location: Callable[[str], str]
    files: JobFiles
    parallel_downloads: int = 4
    parallel_hashing: int = 2  # output files copied and hashed at once (2 cores here)

    def authorize(self, who: Principal, entry: WorkflowEntry, params: dict[str, Any],
                  project: str) -> list[DataRef]:
        """Every input reference, checked against the caller *and* the run's project: a
        dataset of another project never flows into this project's quarantine, even for
        a member of both (a dataset granted by a visa is personal and goes anywhere the
        caller works). 403 naming the dataset (and an audit event) otherwise; unknown
        dataset ids get the same answer, so ids cannot be probed; 400 when the file does
        not exist."""
        refs = parse_refs(entry.params_schema, params, self.gate.policy.datasets)
        self.check_refs(who, refs, project, entry.ref)
        return refs

    def check_refs(self, who: Principal, refs: list[DataRef], project: str, what: str,
                   directories: frozenset[str] = frozenset()) -> None:
        """``authorize`` for references already parsed (a workflow's or a task's,
        ``what`` names it in the audit); a pointer in ``directories`` names a folder."""
        datasets = self.gate.policy.datasets
        access = self.gate.access(who)
        for ref in refs:
            ds = datasets.get(ref.dataset)
            by_project = ds is not None and project in ds.projects
            by_visa = ds is not None and ref.dataset in access.datasets and not any(
                p in access.projects for p in ds.projects)
            if ref.dataset not in access.datasets or not (by_project or by_visa):
                self.audit.append(AuditEvent(
                    action="data.denied", actor=who.sub, outcome="denied",
                    target=ref.dataset[:255], details={"workflow": what[:255],
                                                       "pointer": ref.pointer,
                                                       "project": project}))
                raise Forbidden(f"dataset {ref.dataset[:64]!r} may not be used by you in "
                                f"project {project!r}", rule="dataset")
            if not self._exists(datasets[ref.dataset].location, ref.path,
                                ref.pointer in directories):
                raise InvalidRequest("an input does not exist",
                                     [(ref.pointer, f"{ref.raw[:200]!r} is not a "
                                      f"{'folder' if ref.pointer in directories else 'file'}"
                                      " of the dataset")])

    def _exists(self, location: str, path: str, directory: bool) -> bool:
        store = self.stores(location)
        if directory:
            return next(iter(store.list(path.rstrip("/") + "/")), None) is not None
        return store.stat(path) is not None

    def stage_copies(self, items: list[tuple[DataRef, Path, bool]]) -> int:
        """Copy each referenced file (or every file below a referenced folder, when its
        flag is set) to its destination, read-only: a container sees no link target.
        Returns how many files were copied."""
        datasets = self.gate.policy.datasets
        jobs = []
        for ref, dest, directory in items:
            store = self.stores(datasets[ref.dataset].location)
            if not directory:
                jobs.append((store, ref.path, dest))
                continue
            prefix = ref.path.rstrip("/") + "/"
            jobs += [(store, info.key, dest / info.key[len(prefix):])
                     for info in store.list(prefix)]
        with ThreadPoolExecutor(max_workers=self.parallel_downloads) as pool:
            list(pool.map(lambda job: self.files.stage(job[0], job[1], job[2], copy=True),
                          jobs))
        return len(jobs)

    def stage(self, entry: WorkflowEntry, params: dict[str, Any],
              job: JobDir) -> dict[str, Any]:
        """Stage every input under the job's ``inputs/`` and return the params the engine
        gets (references replaced by local paths)."""
        datasets = self.gate.policy.datasets
        refs = parse_refs(entry.params_schema, params, datasets)
        staged = dict(params)
        jobs = []
        seen: set[Path] = set()
        for ref in refs:
            local = job.inputs / ref.dataset / ref.path
            set_pointer(staged, ref.pointer, str(local))
            if local in seen:
                continue  # the same file named twice is staged once
            seen.add(local)
            jobs.append((self.stores(datasets[ref.dataset].location), ref.path, local))
        with ThreadPoolExecutor(max_workers=self.parallel_downloads) as pool:
            list(pool.map(lambda job: self.files.stage(*job), jobs))
        return staged

    def quarantine(self, project: str, run_id: str, outdir: Path,
                   files: list[Path]) -> list[OutputFile]:
        """Copy outputs into the project's quarantine under ``<run_id>/``, hashing each
        file while it streams; return what was recorded (in the order of ``files``)."""
        return self.quarantine_files(project, run_id,
                                     [(outdir / rel, rel.as_posix()) for rel in files])

    def quarantine_files(self, project: str, run_id: str, files: list[tuple[Path, str]],
                         missing_ok: bool = False) -> list[OutputFile]:
        """``quarantine`` for (file, name in the quarantine) pairs; with ``missing_ok`` a
        file that does not exist is skipped. ``parallel_hashing`` files move at once, each
        hashed in a thread of its own while it is copied (``HashingReader``): memory is two
        chunks per file in flight."""
        store = self.stores(self.quarantine_location(project))
        workers = max(1, min(self.parallel_hashing, len(files)))
        with ThreadPoolExecutor(workers, thread_name_prefix="spe-sha256") as hashing, \
                ThreadPoolExecutor(workers, thread_name_prefix="spe-copy") as copying:
            def one(item: tuple[Path, str]) -> OutputFile | None:
                source, name = item
                try:
                    with self.files.read(source) as fh:
                        reader = HashingReader(fh, hashing)
                        store.put(f"{run_id}/{name}", reader)  # type: ignore[arg-type]
                        digest = reader.hexdigest()
                except FileNotFoundError:
                    if not missing_ok:
                        raise
                    return None
                return OutputFile(path=name, size=reader.size, sha256=digest)

            return [o for o in copying.map(one, files) if o is not None]

    def quarantine_logs(self, project: str, run_id: str, job: JobDir) -> int:
        """Copy the engine's stdout and stderr into the quarantine under ``_logs/``
        (``quarantined_log``): output like any other, released only through the airlock.
        A stream the engine never wrote is skipped; returns how many were copied."""
        store = self.stores(self.quarantine_location(project))
        copied = 0
        for stream in LOG_STREAMS:
            try:
                with self.files.read(job.stream(stream)) as fh:
                    store.put(f"{run_id}/{quarantined_log(stream)}", fh)
            except FileNotFoundError:
                continue
            copied += 1
        return copied

    def purge_quarantine(self, project: str, run_id: str) -> int:
        store = self.stores(self.quarantine_location(project))
        keys = [info.key for info in store.list(f"{run_id}/")]
        for key in keys:
            store.delete(key)
        return len(keys)
