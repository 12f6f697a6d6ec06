"""The ``JobFiles`` port on a local or shared POSIX filesystem: every file operation the
services make on a job's directory (``spe.domain.jobdir.JobDir`` names the paths)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from spe.adapters.catalog import directory_digest, skipped
from spe.domain.jobdir import JobDir
from spe.domain.models import JSON
from spe.domain.ports import LocalStore, ObjectStore


def _not_bundle(_folder: str, names: list[str]) -> set[str]:
    """What ``copytree`` leaves out: exactly what the bundle digest leaves out."""
    return {name for name in names if skipped(name)}


def _owner_only(root: Path) -> None:
    """``copytree`` copies the catalog's modes (often 0644/0755): keep only the owner's
    bits, as the service's umask (077) would. A SLURM run directory is then opened to the
    project's group by ``spe.adapters.executors.workdir.share_with_group``."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o700)


class LocalJobFiles:
    def copy_bundle(self, job: JobDir, bundle: Path) -> None:
        if job.workflow.exists():
            shutil.rmtree(job.workflow)
        shutil.copytree(bundle, job.workflow, symlinks=False, ignore=_not_bundle)
        _owner_only(job.workflow)
        job.logs.mkdir(parents=True, exist_ok=True)

    def bundle_digest(self, job: JobDir) -> str:
        return directory_digest(job.workflow)

    def write_params(self, job: JobDir, params: JSON) -> None:
        job.params.write_text(json.dumps(params, indent=2))

    def stage(self, store: ObjectStore, key: str, dest: Path, copy: bool = False) -> None:
        """A store on a filesystem the job can read is linked (its permissions apply), or
        copied read-only with ``copy``; another is downloaded, its size verified, and made
        read-only."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(store, LocalStore) and not copy:
            dest.symlink_to(store.local_path(key))
            return
        if isinstance(store, LocalStore):
            tmp = dest.with_name(dest.name + ".part")
            shutil.copyfile(store.local_path(key), tmp, follow_symlinks=True)
            tmp.chmod(0o400)
            tmp.replace(dest)
            return
        tmp = dest.with_name(dest.name + ".part")
        info = store.get_file(key, tmp)
        expected = store.stat(key)
        if expected is None or tmp.stat().st_size != expected.size \
                or info.size != expected.size:
            tmp.unlink(missing_ok=True)
            raise OSError(f"staging {key} failed: size mismatch")
        tmp.chmod(0o400)  # read-only, private (a SLURM run shares it with the group)
        tmp.replace(dest)

    @contextmanager
    def read(self, path: Path) -> Iterator[BinaryIO]:
        with path.open("rb") as stream:
            yield stream

    def tail(self, path: Path, max_bytes: int) -> bytes | None:
        if not path.is_file():
            return None
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            return fh.read()

    def exists(self, job: JobDir) -> bool:
        return job.root.is_dir()

    def touch_lease(self, job: JobDir, at: float) -> None:
        job.root.mkdir(parents=True, exist_ok=True)
        job.start_lease.touch()
        os.utime(job.start_lease, (at, at))

    def lease_time(self, job: JobDir) -> float | None:
        try:
            return job.start_lease.stat().st_mtime
        except FileNotFoundError:
            return None

    def remove(self, job: JobDir) -> bool:
        if not job.root.is_dir():
            return False
        shutil.rmtree(job.root)
        return True
