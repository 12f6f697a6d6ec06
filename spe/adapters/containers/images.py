"""The site's image store: one folder per image root, named by its content digest, and the
catalog ``images.yaml`` beside them (name and tag -> digest -> folder, and aliases).

``import_image`` is how an operator adds an image (``spe image import``): from a folder
or a tar archive (no registry is needed), adding the task mount points and a minimal
/etc/passwd the runtime expects, then hashing the root. The digest covers every path, its
type, its execute bits, a link's target and a file's bytes; a task's start compares it
with the catalog (``spe.services.task_jobs``), so a drifted image never runs."""

from __future__ import annotations

import grp
import hashlib
import os
import shutil
import tarfile
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from spe.domain.images import ImageCatalog, ImageEntry, normalise
from spe.domain.tes import MOUNT_POINTS

CATALOG = "images.yaml"
RUNTIME_MOUNTS = ("dev", "proc", "sys", "home", "etc")
PASSWD = "root:x:0:0:root:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n"  # noqa: S105
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def image_digest(root: Path) -> str:
    """``sha256:<hex>`` of an image root (paths sorted; links are not followed)."""
    total = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if path.is_symlink():
                line = f"L {rel} {path.readlink()}"
            elif path.is_dir():
                line = f"D {rel}"
            elif path.is_file():
                line = f"F {rel} {mode & 0o100:o} {_file_sha256(path)}"  # owner x: shared or not
            else:
                line = f"O {rel}"  # devices, fifos: named, never read
            total.update(line.encode("utf-8", "surrogateescape") + b"\0")
    return f"sha256:{total.hexdigest()}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(root: Path) -> tuple[tuple[str, int, int, int, int], ...]:
    """Every entry's path, mode, size, mtime and ctime: any change to a file's bytes or
    metadata changes its ctime, which no unprivileged process can set back."""
    entries = []
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            st = Path(dirpath, name).lstat()
            entries.append((f"{dirpath}/{name}", st.st_mode, st.st_size, st.st_mtime_ns,
                            st.st_ctime_ns))
    return tuple(entries)


class DirectoryImages:
    """The ``Images`` port on a folder. A digest is computed again only when the root's
    ``fingerprint`` changed since the last time (one lstat per entry instead of reading
    every byte)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._known: dict[Path, tuple[tuple[tuple[str, int, int, int, int], ...], str]] = {}
        self._lock = threading.Lock()

    def catalog(self) -> ImageCatalog:
        return load_catalog(self.store)

    def root(self, entry: ImageEntry) -> Path:
        return self.store / entry.folder

    def digest(self, entry: ImageEntry) -> str:
        root = self.root(entry)
        if not root.is_dir():
            return "sha256:missing"
        seen = fingerprint(root)
        with self._lock:
            known = self._known.get(root)
        if known is not None and known[0] == seen:
            return known[1]
        digest = image_digest(root)
        if fingerprint(root) == seen:  # nothing changed while it was read
            with self._lock:
                self._known[root] = (seen, digest)
        return digest


def load_catalog(store: Path) -> ImageCatalog:
    path = store / CATALOG
    if not path.is_file():
        return ImageCatalog()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items = data.get("images") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{path}: 'images' must be a list")
    entries = []
    for item in items:
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) for k in ("name", "tag", "digest", "folder")):
            raise ValueError(f"{path}: every image needs name, tag, digest and folder")
        entries.append(ImageEntry(item["name"], item["tag"], item["digest"],
                                  item["folder"], tuple(str(a) for a in
                                                        item.get("aliases") or ())))
    return ImageCatalog(entries)


def save_catalog(store: Path, catalog: ImageCatalog) -> None:
    items: list[dict[str, Any]] = []
    for entry in catalog.entries:
        item = asdict(entry)
        item["aliases"] = list(entry.aliases)
        items.append(item)
    tmp = store / f".{CATALOG}.tmp"
    tmp.write_text(yaml.safe_dump({"images": items}, sort_keys=False), encoding="utf-8")
    tmp.replace(store / CATALOG)


def verify_images(store: Path) -> list[str]:
    """Every image whose root is missing or no longer hashes to its pinned digest."""
    images = DirectoryImages(store)
    problems = []
    for entry in images.catalog().entries:
        found = images.digest(entry)
        if found != entry.digest:
            problems.append(f"image {entry.ref}: its root hashes to {found}, the catalog "
                            f"pins {entry.digest}")
    return problems


def _unpack(source: Path, dest: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, dest, symlinks=True)
        return
    with tarfile.open(source) as tar:
        tar.extractall(dest, filter="tar")  # no absolute paths, no '..', no device files


def _prepare_root(root: Path) -> None:
    """The folders tasks bind into (images are read-only), those the runtime mounts its
    own file systems on, and the runtime's /etc files."""
    for name in (*MOUNT_POINTS, *RUNTIME_MOUNTS):
        target = root / name
        if target.is_symlink():
            target.unlink()
        target.mkdir(exist_ok=True)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        if not (etc / name).exists():
            (etc / name).write_text(text, encoding="utf-8")


def _share(root: Path, group: str) -> None:
    """Readable (and traversable) by the jobs' group, never by others."""
    gid = grp.getgrnam(group).gr_gid
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in [".", *dirs, *files]:
            path = Path(dirpath, name)
            if path.is_symlink():
                continue
            os.chown(path, -1, gid)
            mode = path.stat().st_mode
            path.chmod((mode & 0o7700) | ((mode >> 3) & 0o050) | (0o050 if path.is_dir()
                                                                  else 0o040))


def import_image(store: Path, source: Path, name: str, tag: str, *,
                 aliases: tuple[str, ...] = (), group: str = "") -> ImageEntry:
    """Add (or replace) ``name:tag`` from a folder or tar archive; returns its entry."""
    if not name or not tag or any(c in name + tag for c in " @\0\n"):
        raise ValueError("an image needs a plain name and tag")
    store.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".import-", dir=store))
    try:
        root = work / "root"
        _unpack(source, root)
        _prepare_root(root)
        digest = image_digest(root)
        folder = digest.replace(":", "-")
        if not (store / folder).exists():
            if group:
                _share(root, group)
            root.chmod(0o750 if group else 0o700)
            root.rename(store / folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if group:
        store.chmod(0o750)
        os.chown(store, -1, grp.getgrnam(group).gr_gid)
    entry = ImageEntry(name, tag, digest, folder, tuple(normalise(a) for a in aliases))
    catalog = load_catalog(store)
    kept = [e for e in catalog.entries if e.ref != entry.ref]
    save_catalog(store, ImageCatalog([*kept, entry]))
    return entry
