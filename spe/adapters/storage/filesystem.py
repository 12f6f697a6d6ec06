"""ObjectStore on a directory: one file per key under ``root``.

Every key is checked (``keys.check_key``) and its path resolved: a path that leaves
``root`` (through ``..`` or a symlink, a symlinked directory included) is refused with
``InvalidRequest``; files are then opened by their resolved path with ``O_NOFOLLOW``.
Writes go to a temporary file in the target directory and are moved into place with
``os.replace`` (readers see the old bytes or the new ones, never a part). ``get`` streams
``chunk_size`` pieces.

A key cannot be both an object and a "directory" here (``a`` and ``a/b``): such a write
raises ``Conflict``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from spe.adapters.storage.keys import check_key, check_prefix, key_problem
from spe.domain.errors import Conflict, InvalidRequest, NotFound
from spe.domain.ports import ObjectInfo

CHUNK = 1 << 20
TMP_PREFIX = ".spe-tmp-"
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_TMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_ATTEMPTS = 3


class FilesystemStore:
    """Objects as files under ``root`` (see the module docstring)."""

    def __init__(self, root: Path, *, chunk_size: int = CHUNK) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._root = Path(root).resolve()
        if not self._root.is_dir():
            raise ValueError(f"{self._root} is not a directory")
        self._chunk = chunk_size

    def __repr__(self) -> str:
        return f"FilesystemStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        return self._root

    # --- writes -------------------------------------------------------------------------

    def put(self, key: str, stream: BinaryIO) -> ObjectInfo:
        path = self._path(key)
        self._write(path, lambda out: self._pump(stream, out))
        return self._info_of(key, path)

    def delete(self, key: str) -> None:
        check_key(key)
        parent = self._inside((self._root / key).parent, key, allow_root=True)
        try:
            (parent / Path(key).name).unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        self._prune(parent)

    # --- reads --------------------------------------------------------------------------

    def get(self, key: str) -> Iterator[bytes]:
        fh = self._open(self._path(key), key)
        return self._chunks(fh)

    def get_file(self, key: str, dest: Path) -> ObjectInfo:
        path = self._path(key)
        dest = Path(dest)
        with self._open(path, key) as src:
            info = self._info_from(key, os.fstat(src.fileno()))
            tmp = dest.with_name(f"{TMP_PREFIX}{dest.name}.{uuid.uuid4().hex}")
            try:
                with tmp.open("xb") as out:
                    shutil.copyfileobj(src, out, self._chunk)
                tmp.replace(dest)
            finally:
                tmp.unlink(missing_ok=True)
        return info

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat(follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._info_from(key, st) if stat.S_ISREG(st.st_mode) else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        base = prefix.rpartition("/")[0]
        start = self._inside(self._root / base, prefix, allow_root=True) if base else self._root
        return self._walk(start, f"{base}/" if base else "", prefix)

    def local_path(self, key: str) -> Path:
        """The real path of the object ``key`` (checked to stay under the root)."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key!r} does not exist")
        return path

    # --- helpers ------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The resolved path of ``key``, refused when it leaves the root."""
        check_key(key)
        return self._inside(self._root / key, key, allow_root=False)

    def _inside(self, path: Path, key: str, *, allow_root: bool) -> Path:
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:  # symlink loops
            raise InvalidRequest(f"object key {key!r} cannot be resolved") from exc
        if resolved == self._root and allow_root:
            return resolved
        if resolved == self._root or not resolved.is_relative_to(self._root):
            raise InvalidRequest(f"object key {key!r} leads outside the store")
        return resolved

    def _open(self, path: Path, key: str) -> BinaryIO:
        try:
            fd = os.open(path, _OPEN_READ)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"object {key!r} does not exist") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidRequest(f"object key {key!r} leads outside the store") from exc
            raise
        fh = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            fh.close()
            raise NotFound(f"object {key!r} does not exist")
        return fh

    def _chunks(self, fh: BinaryIO) -> Iterator[bytes]:
        with fh:
            while chunk := fh.read(self._chunk):
                yield chunk

    def _pump(self, src: BinaryIO, out: BinaryIO) -> None:
        while chunk := src.read(self._chunk):
            out.write(chunk)

    def _write(self, path: Path, fill: Callable[[BinaryIO], None]) -> None:
        """Fill a temporary file next to ``path``, then move it into place."""
        fh, tmp = self._temp_next_to(path)
        try:
            with fh:
                fill(fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except IsADirectoryError as exc:
            raise Conflict(f"{path.name!r} is a prefix of other objects") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _temp_next_to(self, path: Path) -> tuple[BinaryIO, Path]:
        """A new temporary file in ``path``'s directory (made if needed; a concurrent
        ``delete`` may prune it meanwhile, hence the retries)."""
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._inside(path.parent, path.name, allow_root=True)
                tmp = path.parent / f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex}"
                return os.fdopen(os.open(tmp, _OPEN_TMP, 0o666), "wb"), tmp
            except (FileExistsError, NotADirectoryError) as exc:
                raise Conflict(f"a parent of {path.name!r} is an object") from exc
            except FileNotFoundError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _prune(self, directory: Path) -> None:
        """Remove empty directories from ``directory`` up to (not including) the root."""
        while directory != self._root and directory.is_relative_to(self._root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``directory`` in key order: entries sorted with directory names
        followed by ``/``, so the walk order is the order of the full keys."""
        try:
            with os.scandir(directory) as it:
                entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e)
                           for e in it if not e.name.startswith(TMP_PREFIX)]
        except (FileNotFoundError, NotADirectoryError):
            return
        for name, entry in sorted(entries, key=lambda pair: pair[0]):
            key = rel + name
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif key.startswith(prefix) and key_problem(key) is None:
                info = self._listed(key, entry)
                if info is not None:
                    yield info

    def _listed(self, key: str, entry: os.DirEntry[str]) -> ObjectInfo | None:
        """The entry as an object: a regular file, or a symlink to one inside the root."""
        try:
            if entry.is_symlink():
                self._path(key)
            st = entry.stat(follow_symlinks=True)
        except (OSError, InvalidRequest):
            return None
        return self._info_from(key, st) if stat.S_ISREG(st.st_mode) else None

    def _info_of(self, key: str, path: Path) -> ObjectInfo:
        return self._info_from(key, path.stat())

    @staticmethod
    def _info_from(key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(key=key, size=st.st_size,
                          modified=datetime.fromtimestamp(st.st_mtime, tz=UTC))

