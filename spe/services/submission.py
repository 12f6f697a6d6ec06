"""Parsing and checking a WES ``POST /runs`` request into a resolved, validated plan.
Every rejection names its rule (see docs/submission-rules.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from spe.domain.attachments import check_attachment_names
from spe.domain.catalog import Catalog, WorkflowEntry, bundle_digest
from spe.domain.errors import InvalidRequest, NotOnAllowlist, PayloadTooLarge
from spe.domain.json_limits import load_json
from spe.domain.models import RunRequest
from spe.domain.params import validate_engine_options, validate_params

REQUIRED = ("workflow_type", "workflow_type_version", "workflow_url")
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 50, 128, 256


@dataclass(frozen=True)
class Submission:
    """The raw multipart form: text fields and attachments as (name, content)."""

    fields: dict[str, str]
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    idempotency_key: str = ""  # the Idempotency-Key header, if any


@dataclass(frozen=True)
class Limits:
    max_attachment_bytes: int = 8 * 2**20
    max_attachments: int = 200


@dataclass(frozen=True)
class Plan:
    request: RunRequest
    entry: WorkflowEntry
    params: dict[str, Any]
    engine_options: dict[str, Any]


def _json_object(fields: dict[str, str], name: str) -> dict[str, Any]:
    raw = fields.get(name, "")
    if not raw.strip():
        return {}
    try:
        value = load_json(raw, name)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{name} is not valid JSON", [(f"/{name}", exc.msg)]) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be a JSON object", [(f"/{name}", "not an object")])
    return value


def _string_map(value: dict[str, Any], name: str, key_max: int, value_max: int,
                count_max: int) -> dict[str, str]:
    errors = [(f"/{name}/{k}", f"must be a string of at most {value_max} characters")
              for k, v in value.items() if not isinstance(v, str) or len(v) > value_max]
    errors += [(f"/{name}", f"key {k[:50]!r} is empty, too long or has ':' or control chars")
               for k in value if not k or len(k) > key_max or ":" in k
               or any(ord(c) < 32 for c in k)]
    if len(value) > count_max:
        errors.append((f"/{name}", f"at most {count_max} entries"))
    if errors:
        raise InvalidRequest(f"{name} must map names to strings", errors)
    return {str(k): str(v) for k, v in value.items()}


def parse_request(sub: Submission) -> RunRequest:
    missing = [(f"/{n}", "required") for n in REQUIRED if not sub.fields.get(n, "").strip()]
    if missing:
        raise InvalidRequest("missing required fields", missing)
    tags = _string_map(_json_object(sub.fields, "tags"), "tags", MAX_TAG_KEY, MAX_TAG_VALUE,
                       MAX_TAGS)
    engine_params = _json_object(sub.fields, "workflow_engine_parameters")
    engine_params = _string_map({k: v if not isinstance(v, int | float | bool) else str(v)
                                 for k, v in engine_params.items()},
                                "workflow_engine_parameters", 64, 256, 50)
    return RunRequest(
        workflow_url=sub.fields["workflow_url"].strip(),
        workflow_type=sub.fields["workflow_type"].strip(),
        workflow_type_version=sub.fields["workflow_type_version"].strip(),
        workflow_params=_json_object(sub.fields, "workflow_params"),
        workflow_engine=sub.fields.get("workflow_engine", "").strip(),
        workflow_engine_version=sub.fields.get("workflow_engine_version", "").strip(),
        workflow_engine_parameters=engine_params, tags=tags,
    )


def resolve_entry(catalog: Catalog, request: RunRequest,
                  attachments: list[tuple[str, bytes]], limits: Limits) -> WorkflowEntry:
    """The catalog entry the request names. Attachments must *be* an approved bundle."""
    if not attachments:
        return catalog.resolve(request.workflow_url)
    if len(attachments) > limits.max_attachments:
        raise PayloadTooLarge(f"at most {limits.max_attachments} attachments are accepted")
    for name, content in attachments:
        if len(content) > limits.max_attachment_bytes:
            raise PayloadTooLarge(f"attachment {name[:100]!r} is larger than "
                                  f"{limits.max_attachment_bytes} bytes")
    check_attachment_names(name for name, _ in attachments)
    digest = bundle_digest(attachments)
    entry = catalog.by_digest(digest)
    if entry is None:
        raise NotOnAllowlist(
            f"the attached workflow (bundle digest {digest}) is not an approved bundle; "
            "attachments are accepted only when they are byte-identical to a catalog entry")
    url = request.workflow_url
    if url not in (entry.entrypoint, entry.ref, entry.id, entry.bundle_digest):
        raise NotOnAllowlist(
            f"workflow_url {url[:200]!r} does not name the attached bundle's entrypoint "
            f"({entry.entrypoint}) or its catalog entry ({entry.ref})")
    return entry


def check_type_and_engine(entry: WorkflowEntry, request: RunRequest,
                          engine_versions: dict[str, str]) -> None:
    installed = engine_versions.get(entry.engine, "")
    if not installed:
        raise InvalidRequest(f"{entry.ref} is not offered here: its engine ({entry.engine}) "
                             "is not installed on this service",
                             [("/workflow_url", f"{entry.engine} is not installed")])
    errors = []
    if request.workflow_type != entry.workflow_type:
        errors.append(("/workflow_type", f"{entry.ref} is {entry.workflow_type}"))
    if request.workflow_type_version != entry.workflow_type_version:
        errors.append(("/workflow_type_version",
                       f"{entry.ref} is {entry.workflow_type} {entry.workflow_type_version}"))
    if request.workflow_engine and request.workflow_engine != entry.engine:
        errors.append(("/workflow_engine", f"{entry.ref} runs on {entry.engine}"))
    if request.workflow_engine_version and request.workflow_engine_version != installed:
        errors.append(("/workflow_engine_version",
                       f"this service runs {entry.engine} {installed}"))
    if errors:
        raise InvalidRequest(f"the request does not match catalog entry {entry.ref}", errors)


def plan(catalog: Catalog, sub: Submission, limits: Limits,
         engine_versions: dict[str, str]) -> Plan:
    """Parse, resolve against the allowlist, and validate params and engine options."""
    request = parse_request(sub)
    entry = resolve_entry(catalog, request, sub.attachments, limits)
    check_type_and_engine(entry, request, engine_versions)
    params = validate_params(entry, request.workflow_params)
    options = validate_engine_options(entry, request.workflow_engine_parameters)
    if not request.workflow_engine:
        request.workflow_engine = entry.engine
    return Plan(request=request, entry=entry, params=params, engine_options=options)
