"""The JobFiles port's contract (``spe/domain/ports.py``) on the local filesystem adapter:
the file work the services do on a job's directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spe.adapters.catalog import directory_digest
from spe.adapters.jobfiles import LocalJobFiles
from spe.adapters.storage.filesystem import FilesystemStore
from spe.domain.jobdir import JobDir
from spe.domain.ports import JobFiles

FILES: list[JobFiles] = [LocalJobFiles()]


@pytest.fixture(params=FILES, ids=lambda f: type(f).__name__)
def files(request: pytest.FixtureRequest) -> JobFiles:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def job(tmp_path: Path) -> JobDir:
    return JobDir.of(tmp_path / "runs", "r1")


def _bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "scripts" / "__pycache__").mkdir(parents=True, exist_ok=True)
    (bundle / ".snakemake").mkdir(exist_ok=True)
    (bundle / "Snakefile").write_text("rule all:\n")
    (bundle / "scripts" / "run.py").write_text("print(1)\n")
    (bundle / "scripts" / "__pycache__" / "run.pyc").write_bytes(b"\0")
    (bundle / ".snakemake" / "state").write_text("x")
    return bundle


def test_copy_bundle_copies_the_bundle_without_caches_and_makes_logs(
        files: JobFiles, job: JobDir, tmp_path: Path) -> None:
    files.copy_bundle(job, _bundle(tmp_path))
    copied = sorted(p.relative_to(job.workflow).as_posix()
                    for p in job.workflow.rglob("*") if p.is_file())
    assert copied == ["Snakefile", "scripts/run.py"]
    assert job.logs.is_dir()


def test_the_digest_of_the_copy_is_the_catalog_digest_of_the_bundle(
        files: JobFiles, job: JobDir, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "scripts" / "helper.pyc").write_bytes(b"\0")  # neither hashed nor copied
    files.copy_bundle(job, bundle)
    assert not (job.workflow / "scripts" / "helper.pyc").exists()
    assert files.bundle_digest(job) == directory_digest(bundle)
    (job.workflow / "Snakefile").write_text("rule all:\n    shell: 'planted'\n")
    assert files.bundle_digest(job) != directory_digest(bundle)


def test_copy_bundle_replaces_an_earlier_copy(files: JobFiles, job: JobDir,
                                              tmp_path: Path) -> None:
    files.copy_bundle(job, _bundle(tmp_path))
    (job.workflow / "left-over").write_text("from an earlier attempt")
    files.copy_bundle(job, _bundle(tmp_path))
    assert not (job.workflow / "left-over").exists()


def test_write_params_then_read_them(files: JobFiles, job: JobDir, tmp_path: Path) -> None:
    files.copy_bundle(job, _bundle(tmp_path))
    files.write_params(job, {"name": "Ærø", "n": [1, 2]})
    with files.read(job.params) as stream:
        assert b'"n": [' in stream.read()


def test_stage_links_a_local_store_object_read_only_through_its_permissions(
        files: JobFiles, job: JobDir, tmp_path: Path) -> None:
    (tmp_path / "data" / "cohort").mkdir(parents=True)
    (tmp_path / "data" / "cohort" / "a.tsv").write_text("x\n")
    store = FilesystemStore(tmp_path / "data")
    dest = job.inputs / "ds" / "cohort" / "a.tsv"
    files.stage(store, "cohort/a.tsv", dest)
    assert dest.read_text() == "x\n"
    assert dest.is_symlink()


def test_stage_with_copy_copies_a_local_store_object_read_only(
        files: JobFiles, job: JobDir, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.tsv").write_text("x\n")
    dest = job.work / "data" / "a.tsv"
    files.stage(FilesystemStore(tmp_path / "data"), "a.tsv", dest, copy=True)
    assert not dest.is_symlink() and dest.read_text() == "x\n"
    assert dest.stat().st_mode & 0o777 == 0o400
    assert dest.stat().st_ino != (tmp_path / "data" / "a.tsv").stat().st_ino


def test_stage_of_a_missing_object_raises_and_leaves_nothing(
        files: JobFiles, job: JobDir, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    store = _NotLocal(FilesystemStore(tmp_path / "data"))
    dest = job.inputs / "ds" / "gone.tsv"
    with pytest.raises(Exception):  # noqa: B017 - the store's NotFound or an OSError
        files.stage(store, "gone.tsv", dest)  # type: ignore[arg-type]
    assert not dest.exists()


def test_stage_downloads_from_a_store_the_job_cannot_read_and_makes_it_read_only(
        files: JobFiles, job: JobDir, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.tsv").write_bytes(b"y" * 1000)
    store = _NotLocal(FilesystemStore(tmp_path / "data"))
    dest = job.inputs / "ds" / "b.tsv"
    files.stage(store, "b.tsv", dest)  # type: ignore[arg-type]
    assert dest.read_bytes() == b"y" * 1000
    assert not dest.is_symlink()
    assert dest.stat().st_mode & 0o222 == 0


def test_tail_returns_the_last_bytes_or_none(files: JobFiles, job: JobDir) -> None:
    job.logs.mkdir(parents=True)
    job.stderr.write_bytes(b"0123456789")
    assert files.tail(job.stderr, 4) == b"6789"
    assert files.tail(job.stderr, 100) == b"0123456789"
    assert files.tail(job.stdout, 4) is None
    assert files.tail(job.logs, 4) is None  # a folder is not a file


def test_the_start_lease_has_the_time_it_was_given(files: JobFiles, job: JobDir) -> None:
    assert files.lease_time(job) is None
    files.touch_lease(job, 1_700_000_000.0)
    assert files.lease_time(job) == 1_700_000_000.0
    files.touch_lease(job, 1_700_000_060.0)
    assert files.lease_time(job) == 1_700_000_060.0


def test_remove_deletes_the_job_directory_once(files: JobFiles, job: JobDir,
                                                tmp_path: Path) -> None:
    assert not files.exists(job)
    assert files.remove(job) is False
    files.copy_bundle(job, _bundle(tmp_path))
    assert files.exists(job)
    assert files.remove(job) is True
    assert not files.exists(job)
    assert files.remove(job) is False


def test_files_the_service_writes_are_private(files: JobFiles, job: JobDir,
                                              tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        files.copy_bundle(job, _bundle(tmp_path))
        files.write_params(job, {})
    finally:
        os.umask(old)
    assert job.params.stat().st_mode & 0o077 == 0


class _NotLocal:
    """A store that is not a ``LocalStore`` (as an S3 bucket is not)."""

    def __init__(self, inner: FilesystemStore) -> None:
        self._inner = inner

    def get_file(self, key: str, dest: Path) -> object:
        return self._inner.get_file(key, dest)

    def stat(self, key: str) -> object:
        return self._inner.stat(key)
