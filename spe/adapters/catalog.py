"""Reads the workflow catalog from a folder: ``<root>/<id>/<version>/manifest.yaml`` beside
``<root>/<id>/<version>/bundle/`` (the files that run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from spe.domain.catalog import Catalog, WorkflowEntry, bundle_digest, parse_manifest
from spe.domain.catalog_review import message_problems, reads_enclave_data
from spe.domain.errors import InvalidRequest

MANIFEST = "manifest.yaml"
BUNDLE = "bundle"
_SKIP_DIRS = {"__pycache__", ".snakemake", ".nextflow", "work"}


def skipped(name: str) -> bool:
    """Whether a file or folder of this name is no part of a bundle (caches, engine state):
    neither hashed nor copied into a run."""
    return name in _SKIP_DIRS or name.endswith(".pyc")


def bundle_files(bundle_dir: Path) -> list[tuple[str, bytes]]:
    """Every regular file under ``bundle_dir`` as (relative posix path, content).

    Symlinks are refused: a bundle is plain files only."""
    files = []
    for path in sorted(bundle_dir.rglob("*")):
        rel = path.relative_to(bundle_dir)
        if any(skipped(part) for part in rel.parts):
            continue
        if path.is_symlink():
            raise InvalidRequest(f"bundle {bundle_dir} contains a symlink: {rel.as_posix()}")
        if path.is_file():
            files.append((rel.as_posix(), path.read_bytes()))
    return files


def directory_digest(bundle_dir: Path) -> str:
    return bundle_digest(bundle_files(bundle_dir))


@dataclass(frozen=True)
class CatalogProblem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _entry_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob(f"*/*/{MANIFEST}"))


def _load_entry(entry_dir: Path) -> WorkflowEntry:
    data = yaml.safe_load((entry_dir / MANIFEST).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise InvalidRequest(f"{entry_dir / MANIFEST} is not a mapping")
    return parse_manifest(data)


def verify_catalog(root: Path) -> list[CatalogProblem]:
    """Every drift between manifests, folder names and bundle contents."""
    problems: list[CatalogProblem] = []
    dirs = _entry_dirs(root)
    if not dirs:
        problems.append(CatalogProblem(str(root), "no workflow manifests found"))
    for entry_dir in dirs:
        where = str(entry_dir / MANIFEST)
        try:
            entry = _load_entry(entry_dir)
        except (InvalidRequest, yaml.YAMLError) as exc:
            problems.append(CatalogProblem(where, str(exc)))
            continue
        if (entry_dir.parent.name, entry_dir.name) != (entry.id, entry.version):
            problems.append(CatalogProblem(
                where, f"folder {entry_dir.parent.name}/{entry_dir.name} does not match "
                f"{entry.id}/{entry.version}"))
        bundle = entry_dir / BUNDLE
        if not (bundle / entry.entrypoint).is_file():
            problems.append(CatalogProblem(where, f"entrypoint {entry.entrypoint} is missing"))
        try:
            actual = directory_digest(bundle)
        except InvalidRequest as exc:
            problems.append(CatalogProblem(where, str(exc)))
            continue
        if actual != entry.bundle_digest:
            problems.append(CatalogProblem(
                where, f"bundle digest drift: manifest pins {entry.bundle_digest}, "
                f"bundle is {actual}"))
        problems += review_messages(entry, bundle)
    return problems


def review_messages(entry: WorkflowEntry, bundle: Path) -> list[CatalogProblem]:
    """The review rule "approved workflows never echo data values in messages", checked
    over the bundle's Python scripts of a workflow that reads enclave data
    (``spe.domain.catalog_review``)."""
    if not reads_enclave_data(entry.params_schema):
        return []
    return [CatalogProblem(str(bundle / rel), f"{problem} (review rule: messages never "
                           "echo data values; docs/catalog.md)")
            for rel, content in bundle_files(bundle) if rel.endswith(".py")
            for problem in message_problems(content.decode("utf-8", errors="replace"))]


def load_catalog(root: Path) -> tuple[Catalog, dict[str, Path]]:
    """The catalog and, for each ``id@version``, its bundle folder. Refuses any drift."""
    problems = verify_catalog(root)
    if problems:
        raise InvalidRequest("the workflow catalog does not verify",
                             [(p.where, p.message) for p in problems])
    entries, bundles = [], {}
    for entry_dir in _entry_dirs(root):
        entry = _load_entry(entry_dir)
        entries.append(entry)
        bundles[entry.ref] = entry_dir / BUNDLE
    return Catalog(entries), bundles
