"""Quarantine copying: sha256 computed in a second thread while the copy streams gives the
same digests as hashing in one pass; several output files move at once and come back in
the order asked, each with its own digest and size."""

from __future__ import annotations

import hashlib
import io
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from spe.adapters.jobfiles import LocalJobFiles
from spe.adapters.storage.filesystem import FilesystemStore
from spe.services.data import DataService, HashingReader


@pytest.mark.parametrize("chunk", [1, 1000, 64 * 1024, 1 << 20, 3 << 20])
def test_the_overlapped_digest_equals_a_one_pass_sha256(chunk: int) -> None:
    rng = random.Random(chunk)  # noqa: S311 - test data, not secrets
    data = rng.randbytes(5 * (1 << 20) + 17)
    with ThreadPoolExecutor(1) as pool:
        reader = HashingReader(io.BytesIO(data), pool)
        copied = b"".join(iter(lambda: reader.read(chunk), b""))
        assert reader.hexdigest() == hashlib.sha256(data).hexdigest()
    assert copied == data
    assert reader.size == len(data)


def service(root: Path, parallel: int) -> DataService:
    (root / "quarantine").mkdir(exist_ok=True)
    store = FilesystemStore(root / "quarantine")
    return DataService(gate=cast(Any, None), stores=lambda _location: store,
                       audit=cast(Any, None), quarantine_location=lambda _p: "q",
                       files=LocalJobFiles(), parallel_hashing=parallel)


@pytest.mark.parametrize("parallel", [1, 2, 8])
def test_outputs_are_recorded_in_order_with_their_own_digests(tmp_path: Path,
                                                              parallel: int) -> None:
    outdir = tmp_path / "out"
    (outdir / "sub").mkdir(parents=True)
    rng = random.Random(parallel)  # noqa: S311 - test data
    names = [Path(f"f{i}.bin") for i in range(5)] + [Path("sub/empty.txt")]
    blobs = {}
    for i, name in enumerate(names):
        blobs[name] = rng.randbytes(i * 700_001) if name.suffix == ".bin" else b""
        (outdir / name).write_bytes(blobs[name])
    recorded = service(tmp_path, parallel).quarantine("p", "run1", outdir, names)
    assert [r.path for r in recorded] == [n.as_posix() for n in names]
    for r, name in zip(recorded, names, strict=True):
        assert r.size == len(blobs[name])
        assert r.sha256 == hashlib.sha256(blobs[name]).hexdigest()
        assert (tmp_path / "quarantine" / "run1" / name).read_bytes() == blobs[name]


def test_a_missing_output_fails_the_quarantine(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.bin").write_bytes(b"a")
    with pytest.raises(FileNotFoundError):
        service(tmp_path, 2).quarantine("p", "run1", tmp_path / "out",
                                        [Path("a.bin"), Path("gone.bin")])
