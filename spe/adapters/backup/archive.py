"""The backup folder: every file the service needs back after a loss, and
``manifest.json`` naming each with its role, size and sha256 (written last: a folder
without it is not a backup).

Roles, and where ``restore`` puts each (``Layout``):

- ``database``: ``database/spe.db`` (SQLite) or ``database/spe.pgdump`` (pg_dump), into
  the configured database;
- ``page-key``: ``keys/secret.key`` (signs page tokens), to ``SPE_HOME/secret.key``;
- ``issuer-key``: ``keys/dev-issuer/*`` (the development issuer's signing key and
  address), to ``SPE_HOME/dev-issuer/``;
- ``checkpoint-key``: ``keys/audit-checkpoint.key`` (signs the audit checkpoints), to its
  configured path;
- ``policy``: ``policy/<name>``, to the configured policy file;
- ``catalog``: ``catalog/<id>/<version>/manifest.yaml``, compared with the configured
  catalog, never written;
- ``quarantine``, ``outbox``: ``zones/<zone>/...`` (the local default zones), to their
  roots.

Everything is written private (files 0600, folders 0700)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spe.adapters.backup import database as db
from spe.adapters.backup.database import BackupError
from spe.adapters.storage.keys import key_problem

MANIFEST = "manifest.json"
FORMAT = "spe-backup/1"
CHUNK = 1 << 20
ZONES = ("quarantine", "outbox")


@dataclass(frozen=True)
class Layout:
    """Where the state of one deployment lives (from its settings)."""

    db_url: str
    home: Path
    catalog: Path
    checkpoint_key: Path
    page_key: Path | None = None  # None: the key is configured, not a file
    policy: Path | None = None
    zones: dict[str, Path] = field(default_factory=dict)  # local default zones only
    pg_bin_dir: Path | None = None
    timeout: float = 3600.0

    def sources(self) -> Iterator[tuple[str, Path, str]]:
        """(role, file, name in the backup) of every file to copy but the database."""
        if self.page_key is not None and self.page_key.is_file():
            yield "page-key", self.page_key, "keys/secret.key"
        issuer = self.home / "dev-issuer"
        if issuer.is_dir():
            for path in sorted(p for p in issuer.iterdir() if p.is_file()):
                yield "issuer-key", path, f"keys/dev-issuer/{path.name}"
        if self.checkpoint_key.is_file():
            yield "checkpoint-key", self.checkpoint_key, "keys/audit-checkpoint.key"
        if self.policy is not None:
            yield "policy", self.policy, f"policy/{self.policy.name}"
        for manifest in sorted(self.catalog.glob("*/*/manifest.yaml")):
            yield "catalog", manifest, f"catalog/{manifest.relative_to(self.catalog)}"
        for zone, root in self.zones.items():
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
                yield zone, path, f"zones/{zone}/{path.relative_to(root).as_posix()}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _private_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with src.open("rb") as fin, dest.open("xb") as fout:
        shutil.copyfileobj(fin, fout, CHUNK)
    dest.chmod(0o600)


def backup(layout: Layout, dest: Path) -> dict[str, Any]:
    """Write a backup of ``layout`` into ``dest`` (new, or an empty folder); returns the
    manifest."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty folder")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    try:
        return _write(layout, dest)
    except BaseException:  # leave DEST empty, so the next attempt may use it
        for path in dest.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise


def _write(layout: Layout, dest: Path) -> dict[str, Any]:
    files: dict[str, dict[str, Any]] = {}
    (dest / "database").mkdir(mode=0o700)
    if db.is_sqlite(layout.db_url):
        name, kind = "database/spe.db", "sqlite"
        db.copy_sqlite(db.sqlite_path(layout.db_url), dest / name)
    else:
        name, kind = "database/spe.pgdump", "postgresql"
        db.dump_postgres(layout.db_url, dest / name, layout.pg_bin_dir, layout.timeout)
    (dest / name).chmod(0o600)
    files[name] = {"role": "database"}
    for role, src, rel in layout.sources():
        _private_copy(src, dest / rel)
        files[rel] = {"role": role}
    for rel, entry in files.items():
        entry.update(size=(dest / rel).stat().st_size, sha256=sha256(dest / rel))
    manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(),
                "database": kind, "files": files}
    path = dest / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)
    return manifest


def verify(src: Path) -> tuple[dict[str, Any], list[str]]:
    """The manifest of the backup in ``src`` and every problem found: a file missing, not
    listed, of another size or digest, or a name that could leave the folder."""
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src}: no readable {MANIFEST} (not a complete backup)") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{src}/{MANIFEST} is not a {FORMAT} manifest")
    problems: list[str] = []
    listed: dict[str, Any] = manifest["files"]
    for rel, entry in sorted(listed.items()):
        bad = key_problem(rel)
        path = src / rel
        if bad is not None or not isinstance(entry, dict):
            problems.append(f"{rel!r}: not a safe entry ({bad or 'malformed'})")
        elif not path.is_file() or path.is_symlink():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != entry.get("size") or sha256(path) != entry.get("sha256"):
            problems.append(f"{rel}: size or sha256 differs from the manifest")
    present = {p.relative_to(src).as_posix() for p in src.rglob("*") if not p.is_dir()}
    problems += [f"{rel}: not in the manifest" for rel in sorted(present - set(listed) -
                                                                   {MANIFEST})]
    return manifest, problems
