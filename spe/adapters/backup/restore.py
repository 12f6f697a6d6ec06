"""``restore``: put a verified backup (``archive``) back into a deployment's ``Layout``.

Nothing is written unless every file of the backup matches its manifest, and nothing is
overwritten without ``force``: a home with anything in it, a PostgreSQL database with
tables, or a file outside the home (the policy, a checkpoint key kept elsewhere) that
differs from the backup's. The catalog is compared, never written (it is deployed from its
own repository). The service must be stopped while a restore runs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spe.adapters.backup import database as db
from spe.adapters.backup.archive import Layout, sha256, verify
from spe.adapters.backup.database import BackupError


@dataclass(frozen=True)
class Step:
    rel: str  # name in the backup
    role: str
    target: Path | None  # None: not restored (see note)
    note: str = ""


def _target(layout: Layout, role: str, rel: str) -> tuple[Path | None, str]:
    name = rel.split("/", 1)[1]
    zone_root = layout.zones.get(role)
    targets: dict[str, tuple[Path | None, str]] = {
        "page-key": (layout.home / "secret.key", ""),
        "issuer-key": (layout.home / "dev-issuer" / Path(rel).name, ""),
        "checkpoint-key": (layout.checkpoint_key, ""),
        "policy": (layout.policy, "not restored: no policy file is configured "
                                  "(SPE_POLICY_FILE); copy it from the backup"),
        "quarantine": (zone_root / name.split("/", 1)[1] if zone_root else None,
                       "not restored: this deployment has no local default quarantine"),
        "outbox": (zone_root / name.split("/", 1)[1] if zone_root else None,
                   "not restored: this deployment has no local default outbox"),
    }
    if role == "page-key" and layout.page_key is None:
        return None, "not restored: the page-token key is configured (SPE_SECRET_KEY)"
    return targets.get(role, (None, f"unknown role {role!r}"))


def plan(layout: Layout, manifest: dict[str, Any]) -> list[Step]:
    steps = []
    for rel, entry in sorted(manifest["files"].items()):
        role = entry["role"]
        if role in ("database", "catalog"):
            steps.append(Step(rel, role, None))
            continue
        target, note = _target(layout, role, rel)
        steps.append(Step(rel, role, target, "" if target else note))
    return steps


def occupied(layout: Layout, src: Path, steps: list[Step]) -> list[str]:
    """Why restoring here would overwrite something (empty: nothing would be)."""
    reasons = []
    if layout.home.exists() and any(layout.home.iterdir()):
        reasons.append(f"{layout.home} is not empty")
    if db.is_sqlite(layout.db_url):
        if db.sqlite_path(layout.db_url).exists():
            reasons.append(f"the database {db.sqlite_path(layout.db_url)} exists")
    elif db.has_tables(layout.db_url):
        reasons.append("the PostgreSQL database holds tables")
    for step in steps:
        target = step.target
        if target is not None and not target.is_relative_to(layout.home) \
                and target.exists() and sha256(target) != sha256(src / step.rel):
            reasons.append(f"{target} differs from the backup's {step.rel}")
    return reasons


def _install(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` (mode 0600) through a temporary file and a rename."""
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.restoring")
    tmp.unlink(missing_ok=True)
    with src.open("rb") as fin, tmp.open("xb") as fout:
        shutil.copyfileobj(fin, fout)
    tmp.chmod(0o600)
    tmp.replace(dest)


def restore(layout: Layout, src: Path, *, force: bool) -> list[str]:
    """Restore the backup in ``src``; returns notes for the operator (what was not
    restored, catalog differences)."""
    manifest, problems = verify(src)
    if problems:
        raise BackupError("the backup does not verify:\n  " + "\n  ".join(problems))
    kind = "sqlite" if db.is_sqlite(layout.db_url) else "postgresql"
    if manifest.get("database") != kind:
        raise BackupError(f"the backup holds a {manifest.get('database')} database; this "
                          f"deployment uses {kind}")
    steps = plan(layout, manifest)
    reasons = occupied(layout, src, steps)
    if reasons and not force:
        raise BackupError("refusing to overwrite: " + "; ".join(reasons) +
                          " (--force overwrites)")
    layout.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    notes = []
    for step in steps:
        path = src / step.rel
        if step.role == "database":
            _restore_database(layout, path, force=force)
        elif step.role == "catalog":
            notes += _compare_catalog(layout, step.rel, path)
        elif step.target is None:
            notes.append(f"{step.rel}: {step.note}")
        else:
            _install(path, step.target)
    return notes


def _restore_database(layout: Layout, path: Path, *, force: bool) -> None:
    if db.is_sqlite(layout.db_url):
        db.restore_sqlite(path, db.sqlite_path(layout.db_url))
    else:
        db.restore_postgres(layout.db_url, path, layout.pg_bin_dir, layout.timeout,
                            clean=force)


def _compare_catalog(layout: Layout, rel: str, path: Path) -> list[str]:
    deployed = layout.catalog / rel.split("/", 1)[1]
    if not deployed.is_file():
        return [f"{rel}: not in the deployed catalog {layout.catalog} (runs of it cannot "
                "be started again; their records and outputs are restored)"]
    if sha256(deployed) != sha256(path):
        return [f"{rel}: differs from the deployed catalog's {deployed}"]
    return []
