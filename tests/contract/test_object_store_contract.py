"""The ObjectStore contract (``spe.domain.ports.ObjectStore``), run against every adapter:
``FilesystemStore`` in a temporary directory and ``S3Store`` against a real SeaweedFS
server (``tests/s3_server.py``; one bucket per session, a fresh key prefix per test).
Then the checks that only make sense for one backend: symlinks for the filesystem;
multipart ETags, server-side encryption, permissions and outages for S3."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import pytest

from spe.adapters.storage.filesystem import FilesystemStore
from spe.domain.digests import sha256_file
from spe.domain.errors import Forbidden, InvalidRequest, NotFound, ServiceUnavailable
from spe.domain.ports import ObjectInfo, ObjectStore
from tests.helpers import free_port
from tests.s3_server import S3Server

if TYPE_CHECKING:
    from spe.adapters.storage.s3 import S3Store

MIB = 1 << 20
CHUNK = MIB
BIG = 20 * MIB
UNSAFE_KEYS = ["../x", "/abs", "a\\b", "a\x00b", "a/../../b", "", "a//b", "./a", "a/",
               "a\nb", "a/.", "\x7f", "..", "a/.."]
UNSAFE_PREFIXES = ["../", "/abs", "a\\b", "a\x00b", "a/../../b", "a//", "./a", "a\nb", ".."]


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.make_bucket()


def make_s3_store(server: S3Server, bucket: str, prefix: str, **options: Any) -> S3Store:
    from spe.adapters.storage.s3 import S3Store

    keys = options.pop("keys", server.admin_keys)
    return S3Store(bucket, prefix, endpoint_url=server.endpoint, access_key=keys.access_key,
                   secret_key=keys.secret_key, multipart_threshold=8 * MIB,
                   chunk_size=CHUNK, **options)


@dataclass
class Backend:
    kind: str  # "filesystem" | "s3"
    store: ObjectStore
    root: Path | None = None  # filesystem: the store's directory
    server: S3Server | None = None  # s3: the server, bucket and this test's prefix
    bucket: str = ""
    prefix: str = ""


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "filesystem":
        root = tmp_path / "store"
        root.mkdir()
        return Backend("filesystem", FilesystemStore(root, chunk_size=CHUNK),
                       root=root)
    server = cast(S3Server, request.getfixturevalue("s3_server"))
    bucket = cast(str, request.getfixturevalue("s3_bucket"))
    prefix = f"t-{uuid.uuid4().hex[:12]}/"
    return Backend("s3", make_s3_store(server, bucket, prefix), server=server,
                   bucket=bucket, prefix=prefix)


@pytest.fixture
def store(backend: Backend) -> ObjectStore:
    return backend.store


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 20 MiB file of random bytes (written in 1 MiB pieces) and its sha256."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with path.open("wb") as fh:
        for _ in range(BIG // MIB):
            fh.write(os.urandom(MIB))
    return path, sha256_file(path)[1]


class Trickle:
    """A stream of unknown length: only ``read``, short reads, no seek/tell/len."""

    def __init__(self, data: bytes, piece: int = 64 << 10) -> None:
        self._data, self._pos, self._piece = data, 0, piece

    def read(self, n: int = -1) -> bytes:
        n = self._piece if n < 0 else min(n, self._piece)
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


def read_all(chunks: Iterator[bytes]) -> bytes:
    return b"".join(chunks)


def put_bytes(store: ObjectStore, key: str, data: bytes) -> ObjectInfo:
    return store.put(key, io.BytesIO(data))


# --- the contract ---------------------------------------------------------------------------

def test_put_then_get_round_trips_the_bytes(store: ObjectStore) -> None:
    data = os.urandom(300_000)
    info = put_bytes(store, "dir/file.bin", data)
    assert (info.key, info.size) == ("dir/file.bin", len(data))
    assert info.modified is not None
    assert read_all(store.get("dir/file.bin")) == data
    stat = store.stat("dir/file.bin")
    assert stat is not None and (stat.key, stat.size) == ("dir/file.bin", len(data))


def test_put_overwrites_and_accepts_empty_objects(store: ObjectStore) -> None:
    put_bytes(store, "k", b"first version")
    assert put_bytes(store, "k", b"").size == 0
    assert read_all(store.get("k")) == b""
    assert put_bytes(store, "k", b"second").size == 6
    assert read_all(store.get("k")) == b"second"


def test_put_from_a_stream_of_unknown_length(store: ObjectStore) -> None:
    data = os.urandom(9 * MIB + 12345)  # above the S3 multipart threshold (8 MiB)
    info = store.put("stream/unknown", cast(BinaryIO, Trickle(data)))
    assert info.size == len(data)
    assert hashlib.sha256(read_all(store.get("stream/unknown"))).digest() == \
        hashlib.sha256(data).digest()


def test_put_then_get_file(store: ObjectStore, tmp_path: Path) -> None:
    src, dest = tmp_path / "src.bin", tmp_path / "out" / "dest.bin"
    src.write_bytes(os.urandom(2 * MIB + 7))
    dest.parent.mkdir()
    with src.open("rb") as fh:
        assert store.put("files/a.bin", fh).size == src.stat().st_size
    info = store.get_file("files/a.bin", dest)
    assert (info.key, info.size) == ("files/a.bin", src.stat().st_size)
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dest.bin"]  # no leftovers


def test_missing_keys(store: ObjectStore, tmp_path: Path) -> None:
    assert store.stat("no/such/key") is None
    with pytest.raises(NotFound):
        store.get("no/such/key")
    with pytest.raises(NotFound):
        store.get_file("no/such/key", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_list_is_sorted_and_filters_by_prefix(store: ObjectStore) -> None:
    assert list(store.list()) == []
    keys = ["b", "a/b/c", "a-c", "a/b0", "a0", "ab/x", "a/c", "a/b/d/e", "Z"]
    for key in keys:
        put_bytes(store, key, key.encode())
    listed = list(store.list())
    assert [i.key for i in listed] == sorted(keys)
    assert all(i.size == len(i.key) for i in listed)
    assert [i.key for i in store.list("a/")] == ["a/b/c", "a/b/d/e", "a/b0", "a/c"]
    assert [i.key for i in store.list("a/b")] == ["a/b/c", "a/b/d/e", "a/b0"]
    assert [i.key for i in store.list("a/b/")] == ["a/b/c", "a/b/d/e"]
    assert [i.key for i in store.list("a")] == ["a-c", "a/b/c", "a/b/d/e", "a/b0", "a/c",
                                                "a0", "ab/x"]
    assert list(store.list("zzz/")) == []
    assert list(store.list("a/b/c")) == [i for i in listed if i.key == "a/b/c"]


def test_delete_is_idempotent(store: ObjectStore) -> None:
    put_bytes(store, "gone/soon", b"x")
    put_bytes(store, "gone/stays", b"y")
    store.delete("gone/soon")
    assert store.stat("gone/soon") is None
    store.delete("gone/soon")
    store.delete("never/existed")
    assert [i.key for i in store.list()] == ["gone/stays"]
    with pytest.raises(NotFound):
        store.get("gone/soon")


def test_streamed_reads_are_bounded(store: ObjectStore, big_file: tuple[Path, str]) -> None:
    path, digest = big_file
    with path.open("rb") as fh:
        assert store.put("big/object", fh).size == BIG
    sha, total, largest = hashlib.sha256(), 0, 0
    tracemalloc.start()
    try:
        for chunk in store.get("big/object"):
            largest = max(largest, len(chunk))
            total += len(chunk)
            sha.update(chunk)
            del chunk
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (total, sha.hexdigest()) == (BIG, digest)
    assert 0 < largest <= CHUNK
    assert peak < 6 * MIB, f"reading 20 MiB peaked at {peak / MIB:.1f} MiB"


def _every_method(store: ObjectStore, key: str, tmp_path: Path) -> dict[str, Callable[[], Any]]:
    return {
        "put": lambda: store.put(key, io.BytesIO(b"data")),
        "get": lambda: read_all(store.get(key)),
        "get_file": lambda: store.get_file(key, tmp_path / "dest.bin"),
        "stat": lambda: store.stat(key),
        "delete": lambda: store.delete(key),
    }


@pytest.mark.parametrize("key", UNSAFE_KEYS, ids=repr)
def test_unsafe_keys_are_refused_before_any_io(backend: Backend, key: str,
                                               tmp_path: Path) -> None:
    store = backend.store
    put_bytes(store, "fine", b"ok")
    sent = _count_requests(backend)
    for name, call in _every_method(store, key, tmp_path).items():
        with pytest.raises(InvalidRequest):
            call()
            pytest.fail(f"{name}({key!r}) was accepted")
    assert sent() == 0, "an unsafe key reached the S3 server"
    assert [i.key for i in store.list()] == ["fine"]
    assert not (tmp_path / "dest.bin").exists()


@pytest.mark.parametrize("prefix", UNSAFE_PREFIXES, ids=repr)
def test_unsafe_list_prefixes_are_refused(backend: Backend, prefix: str) -> None:
    sent = _count_requests(backend)
    with pytest.raises(InvalidRequest):
        list(backend.store.list(prefix))
    assert sent() == 0


def _count_requests(backend: Backend) -> Callable[[], int]:
    """A counter of the HTTP requests the store sends from now on (S3 only)."""
    sent: list[str] = []
    if backend.kind == "s3":
        backend.store.client.meta.events.register(  # type: ignore[attr-defined]
            "before-send.s3", lambda request, **_: sent.append(request.url))
    return lambda: len(sent)


# --- the filesystem only --------------------------------------------------------------------

@pytest.fixture
def fs(tmp_path: Path) -> tuple[FilesystemStore, Path, Path]:
    """A filesystem store, a directory outside it with a secret file, and symlinks in the
    store to both (``link-dir`` -> outside/, ``link-file`` -> outside/secret.txt)."""
    root, outside = tmp_path / "store", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"do not leak")
    (root / "link-dir").symlink_to(outside, target_is_directory=True)
    (root / "link-file").symlink_to(outside / "secret.txt")
    return FilesystemStore(root, chunk_size=CHUNK), root, outside


@pytest.mark.parametrize("key", ["link-file", "link-dir/secret.txt"])
def test_symlinks_out_of_the_root_are_not_followed_for_reads(
        fs: tuple[FilesystemStore, Path, Path], key: str, tmp_path: Path) -> None:
    store, _, _ = fs
    refused = (InvalidRequest, NotFound)
    reads: list[Callable[[], object]] = [
        lambda: read_all(store.get(key)),
        lambda: store.get_file(key, tmp_path / "leak"), lambda: store.local_path(key),
        lambda: store.stat(key),
    ]
    for call in reads:
        with pytest.raises(refused):
            call()
    assert not (tmp_path / "leak").exists()
    assert [i.key for i in store.list()] == []
    with contextlib.suppress(InvalidRequest):  # refused, or nothing listed
        assert list(store.list(key)) == []


@pytest.mark.parametrize("key", ["link-dir/new.txt", "link-dir/sub/new.txt", "link-file"])
def test_writes_never_land_outside_the_root(fs: tuple[FilesystemStore, Path, Path],
                                            key: str) -> None:
    store, _, outside = fs
    with pytest.raises(InvalidRequest):
        put_bytes(store, key, b"payload")
    with contextlib.suppress(InvalidRequest):  # deleting "link-file" removes the link only
        store.delete(key)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"do not leak"


def test_symlinks_inside_the_root_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    store = FilesystemStore(root)
    put_bytes(store, "real/file", b"inside")
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert read_all(store.get("alias/file")) == b"inside"
    assert store.local_path("alias/file") == root.resolve() / "real" / "file"


def test_filesystem_writes_are_atomic_and_deletes_prune_directories(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    store = FilesystemStore(root)
    put_bytes(store, "a/b/c/one", b"1")
    put_bytes(store, "a/two", b"2")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == \
        ["a", "a/b", "a/b/c", "a/b/c/one", "a/two"]  # no temporary files left behind

    class Exploding(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            raise OSError("the source failed")

    with pytest.raises(OSError, match="the source failed"):
        store.put("a/two", Exploding())
    assert read_all(store.get("a/two")) == b"2"  # the old bytes survive a failed write
    store.delete("a/b/c/one")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["a", "a/two"]
    store.delete("a/two")
    assert list(root.iterdir()) == []
    assert root.is_dir()


# --- S3 only --------------------------------------------------------------------------------

def test_s3_multipart_upload(s3_server: S3Server, s3_bucket: str,
                             big_file: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = big_file
    store = make_s3_store(s3_server, s3_bucket, f"mp-{uuid.uuid4().hex[:8]}")
    with path.open("rb") as fh:
        assert store.put("big.bin", fh).size == BIG
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=f"{store.prefix}big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # 20 MiB in 8 MiB parts
    dest = tmp_path / "big.copy"
    assert store.get_file("big.bin", dest).size == BIG
    assert sha256_file(dest) == (BIG, digest)


def test_s3_keys_live_under_the_prefix(s3_server: S3Server, s3_bucket: str) -> None:
    base = f"iso-{uuid.uuid4().hex[:8]}"
    one = make_s3_store(s3_server, s3_bucket, f"{base}/one")
    two = make_s3_store(s3_server, s3_bucket, f"{base}/one-two/")
    put_bytes(one, "k", b"1")
    put_bytes(two, "k", b"2")
    assert [i.key for i in one.list()] == ["k"]
    assert [i.key for i in two.list()] == ["k"]
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket, Prefix=f"{base}/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [f"{base}/one-two/k", f"{base}/one/k"]


def test_s3_server_side_encryption(s3_server: S3Server, s3_bucket: str) -> None:
    """SeaweedFS implements SSE-S3: HeadObject reports ``ServerSideEncryption: AES256``.
    The request headers are checked too, so the test also says what a server that ignores
    the header would have been sent."""
    store = make_s3_store(s3_server, s3_bucket, f"sse-{uuid.uuid4().hex[:8]}", sse="AES256")
    sent: dict[str, str] = {}

    def capture(model: Any, params: dict[str, Any], **_: Any) -> None:
        header = params["headers"].get("x-amz-server-side-encryption")
        if header is not None:
            sent[model.name] = header

    store.client.meta.events.register("before-call.s3", capture)
    put_bytes(store, "small", b"secret")
    store.put("large", cast(BinaryIO, Trickle(os.urandom(9 * MIB))))
    assert sent == {"PutObject": "AES256", "CreateMultipartUpload": "AES256"}
    raw = s3_server.client()
    for key in ("small", "large"):
        head = raw.head_object(Bucket=s3_bucket, Key=f"{store.prefix}{key}")
        assert head.get("ServerSideEncryption") == "AES256", key
    assert read_all(store.get("small")) == b"secret"


def test_s3_read_only_identity(s3_server: S3Server) -> None:
    bucket = s3_server.reader_bucket
    prefix = f"ro-{uuid.uuid4().hex[:8]}"
    admin = make_s3_store(s3_server, bucket, prefix)
    reader = make_s3_store(s3_server, bucket, prefix, keys=s3_server.reader_keys)
    put_bytes(admin, "data.txt", b"readable")
    assert read_all(reader.get("data.txt")) == b"readable"
    assert [i.key for i in reader.list()] == ["data.txt"]
    with pytest.raises(Forbidden):
        put_bytes(reader, "data.txt", b"overwritten")
    with pytest.raises(Forbidden):
        reader.delete("data.txt")
    elsewhere = make_s3_store(s3_server, s3_server.make_bucket(), "",
                              keys=s3_server.reader_keys)
    with pytest.raises(Forbidden):
        elsewhere.stat("anything")
    assert read_all(admin.get("data.txt")) == b"readable"


def test_s3_outage_is_service_unavailable() -> None:
    from spe.adapters.storage.s3 import S3Store

    store = S3Store("nowhere", endpoint_url=f"http://127.0.0.1:{free_port()}",
                    access_key="AKIDEXAMPLE", secret_key="not-a-real-secret",
                    connect_timeout=1, read_timeout=1, max_attempts=1)
    began = time.monotonic()
    calls: list[Callable[[], object]] = [lambda: store.stat("k"), lambda: store.get("k"),
                                         lambda: put_bytes(store, "k", b"x"),
                                         lambda: list(store.list())]
    for call in calls:
        with pytest.raises(ServiceUnavailable) as caught:
            call()
        assert "not-a-real-secret" not in str(caught.value)
    assert time.monotonic() - began < 10
    assert "not-a-real-secret" not in repr(store)
