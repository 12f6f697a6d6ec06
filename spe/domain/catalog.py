"""The workflow allowlist: approved entries, their pinned bundle digests, and resolution
of a WES ``workflow_url`` to exactly one entry.

Bundle digest (documented in docs/catalog.md): sha256 over the bundle's files sorted by
their POSIX relative path; for each file the digest takes
``path (UTF-8) NUL size (decimal ASCII) NUL content``. It is written ``sha256:<hex>``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from spe.domain.errors import InvalidRequest, NotOnAllowlist
from spe.domain.jobdir import LOG_PREFIX

WORKFLOW_TYPES = {"SMK": "snakemake", "NFL": "nextflow"}
OPTION_TYPES = frozenset({"integer", "number", "boolean", "string"})
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_VERSION = re.compile(r"^\d+(\.\d+){0,2}([-+][0-9A-Za-z.]+)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class EngineOption:
    """One allowed engine option: a type and, where it applies, bounds or choices."""

    name: str
    type: str
    default: Any
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkflowEntry:
    id: str
    version: str
    name: str
    description: str
    workflow_type: str
    workflow_type_version: str
    engine: str
    entrypoint: str
    bundle_digest: str
    params_schema: dict[str, Any]
    engine_options: tuple[EngineOption, ...]
    outputs: tuple[str, ...]
    examples: tuple[dict[str, Any], ...]
    approved_by: tuple[str, ...]
    approved_at: str
    resources: dict[str, int] = field(default_factory=dict)
    rule_jobs: str = ""  # "", or one of RULE_JOBS: where rules go on a cluster

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"


def bundle_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """Digest of a bundle given ``(relative posix path, content)`` pairs."""
    h = hashlib.sha256()
    for path, content in sorted(files, key=lambda pc: pc[0]):
        h.update(path.encode("utf-8") + b"\0" + str(len(content)).encode() + b"\0")
        h.update(content)
    return "sha256:" + h.hexdigest()


def version_key(version: str) -> tuple[int, ...]:
    core = re.split(r"[-+]", version, maxsplit=1)[0]
    return tuple(int(p) for p in core.split("."))


class Catalog:
    """The approved entries. Resolution rules are those of docs/catalog.md."""

    def __init__(self, entries: Iterable[WorkflowEntry]) -> None:
        self._entries: dict[str, WorkflowEntry] = {}
        for e in entries:
            if e.ref in self._entries:
                raise ValueError(f"duplicate catalog entry {e.ref}")
            self._entries[e.ref] = e

    def entries(self) -> list[WorkflowEntry]:
        return sorted(self._entries.values(), key=lambda e: (e.id, version_key(e.version)))

    def by_digest(self, digest: str) -> WorkflowEntry | None:
        return next((e for e in self._entries.values() if e.bundle_digest == digest), None)

    def newest(self, workflow_id: str) -> WorkflowEntry | None:
        versions = [e for e in self._entries.values() if e.id == workflow_id]
        return max(versions, key=lambda e: version_key(e.version)) if versions else None

    def resolve(self, workflow_url: str) -> WorkflowEntry:
        """``<id>@<version>``, ``<id>`` (newest approved) or ``sha256:<digest>``."""
        url = workflow_url.strip()
        if url.startswith("sha256:"):
            entry = self.by_digest(url)
        elif "@" in url:
            entry = self._entries.get(url)
        elif _ID.match(url):
            entry = self.newest(url)
        else:
            entry = None
        if entry is None:
            raise NotOnAllowlist(
                f"workflow_url {workflow_url[:200]!r} is not on the allowlist: name an approved "
                "catalog entry as <id>@<version>, <id> or sha256:<bundle digest> "
                "(see GET /spe/v1/workflows)"
            )
        return entry


def parse_manifest(data: dict[str, Any]) -> WorkflowEntry:
    """Validate a manifest mapping; raise ``InvalidRequest`` listing every problem."""
    errors: list[tuple[str, str]] = []

    def need(key: str, kind: type) -> Any:
        value = data.get(key)
        if not isinstance(value, kind):
            errors.append((f"/{key}", f"required, must be {kind.__name__}"))
            return kind()
        return value

    wid, version = need("id", str), str(data.get("version", ""))
    if wid and not _ID.match(wid):
        errors.append(("/id", "lower-case letters, digits and '-' only"))
    if not _VERSION.match(version):
        errors.append(("/version", "must look like 1.2.3"))
    wtype = need("workflow_type", str)
    if wtype and wtype not in WORKFLOW_TYPES:
        errors.append(("/workflow_type", f"must be one of {sorted(WORKFLOW_TYPES)}"))
    digest = need("bundle_digest", str)
    if digest and not _DIGEST.match(digest):
        errors.append(("/bundle_digest", "must be sha256:<64 hex>"))
    approval = need("approval", dict)
    approved_by = approval.get("approved_by") or []
    if not isinstance(approved_by, list) or not approved_by \
            or not all(isinstance(a, str) for a in approved_by):
        errors.append(("/approval/approved_by", "at least one approver is required"))
        approved_by = []
    approved_at = approval.get("approved_at")
    if not isinstance(approved_at, date | str) or not str(approved_at):
        errors.append(("/approval/approved_at", "required (YYYY-MM-DD)"))
    options = _parse_options(need("engine_options", dict), errors)
    outputs = need("outputs", list)
    errors.extend((f"/outputs/{i}", f"{LOG_PREFIX} is reserved for the engine's logs")
                  for i, o in enumerate(outputs)
                  if isinstance(o, str) and o.lstrip("./").startswith(LOG_PREFIX))
    entry = WorkflowEntry(
        id=wid, version=version, name=need("name", str), description=need("description", str),
        workflow_type=wtype, workflow_type_version=str(data.get("workflow_type_version", "")),
        engine=str(data.get("workflow_engine") or WORKFLOW_TYPES.get(wtype, "")),
        entrypoint=need("entrypoint", str), bundle_digest=digest,
        params_schema=need("params_schema", dict), engine_options=options,
        outputs=tuple(outputs), examples=_examples(data, errors),
        approved_by=tuple(approved_by), approved_at=str(approved_at),
        resources=_resources(data, errors), rule_jobs=_rule_jobs(data, errors),
    )
    if errors:
        raise InvalidRequest(f"manifest of {wid or '?'}@{version or '?'} is invalid", errors)
    return entry


def _examples(data: dict[str, Any], errors: list[tuple[str, str]]) -> tuple[Any, ...]:
    raw = data.get("examples") or []
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        errors.append(("/examples", "a list of mappings (name, params)"))
        return ()
    return tuple(raw)


def _resources(data: dict[str, Any], errors: list[tuple[str, str]]) -> dict[str, int]:
    raw = data.get("resources") or {}
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in raw.items()):
        errors.append(("/resources", "a mapping of resource names to whole numbers >= 0"))
        return {}
    return dict(raw)


RULE_JOBS = ("cluster", "in_head_job")


def _rule_jobs(data: dict[str, Any], errors: list[tuple[str, str]]) -> str:
    raw = data.get("rule_jobs") or ""
    if raw and raw not in RULE_JOBS:
        errors.append(("/rule_jobs", f"one of {list(RULE_JOBS)} (absent: the site's default)"))
        return ""
    return str(raw)


def _parse_options(raw: dict[str, Any], errors: list[tuple[str, str]]) -> tuple[EngineOption, ...]:
    options = []
    for name, spec in sorted(raw.items()):
        ptr = f"/engine_options/{name}"
        if not isinstance(spec, dict) or spec.get("type") not in OPTION_TYPES:
            errors.append((ptr, f"needs a type among {sorted(OPTION_TYPES)}"))
            continue
        if not isinstance(spec.get("enum") or [], list):
            errors.append((f"{ptr}/enum", "a list of choices"))
            continue
        options.append(EngineOption(
            name=name, type=spec["type"], default=spec.get("default"),
            description=str(spec.get("description", "")),
            minimum=spec.get("minimum"), maximum=spec.get("maximum"),
            choices=tuple(spec.get("enum") or ()),
        ))
    return tuple(options)
