"""Parsing the policy file (a mapping, from YAML) into a ``Policy``, listing every problem
with its JSON pointer. The format is documented in docs/security.md#the-policy-file."""

from __future__ import annotations

import re
from typing import Any

from spe.domain.airlock_checks import AirlockSettings
from spe.domain.errors import InvalidRequest
from spe.domain.identity import Entitlement
from spe.domain.policy import (
    GLOBAL,
    LOG_MODES,
    POSIX_NAME,
    ROLES,
    VISIBILITIES,
    Dataset,
    Policy,
    Project,
    RoleRule,
    VisaRule,
    entitlement_or_error,
    nested_locations,
)

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOP = {"trusted_authorities", "visa_issuers", "visa_max_age_seconds", "projects", "roles",
        "datasets", "posix_accounts"}
_PROJECT = {"id", "title", "entitlements", "posix_group", "slurm_account", "storage",
            "airlock", "visibility", "retention_days", "logs"}


class _Errors(list[tuple[str, str]]):
    def add(self, pointer: str, message: str) -> None:
        self.append((pointer, message))

    def unknown_keys(self, ptr: str, data: dict[str, Any], allowed: set[str]) -> None:
        for key in sorted(set(data) - allowed):
            self.add(f"{ptr}/{key}", f"unknown key (allowed: {sorted(allowed)})")


def _list(data: dict[str, Any], key: str, ptr: str, errors: _Errors) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        errors.add(f"{ptr}/{key}", "must be a list")
        return []
    return value


def _entitlements(raw: list[Any], ptr: str, errors: _Errors) -> tuple[Entitlement, ...]:
    parsed = []
    for i, item in enumerate(raw):
        result = entitlement_or_error(item)
        if isinstance(result, str):
            errors.add(f"{ptr}/{i}", result)
        else:
            parsed.append(result)
    return tuple(parsed)


def _project(i: int, raw: Any, errors: _Errors) -> Project | None:
    ptr = f"/projects/{i}"
    if not isinstance(raw, dict):
        errors.add(ptr, "must be a mapping")
        return None
    errors.unknown_keys(ptr, raw, _PROJECT)
    pid = raw.get("id")
    if not isinstance(pid, str) or not _ID.match(pid):
        errors.add(f"{ptr}/id", "required: lower-case letters, digits, '-' and '_'")
    ents = _entitlements(_list(raw, "entitlements", ptr, errors), f"{ptr}/entitlements",
                         errors)
    if not ents:
        errors.add(f"{ptr}/entitlements", "at least one entitlement grants membership")
    visibility = raw.get("visibility", "owner")
    if visibility not in VISIBILITIES:
        errors.add(f"{ptr}/visibility", f"one of {sorted(VISIBILITIES)}")
    airlock = raw.get("airlock") or {}
    try:
        AirlockSettings.from_policy(airlock)
    except (ValueError, TypeError, AttributeError) as exc:
        errors.add(f"{ptr}/airlock", str(exc))
        airlock = {}
    storage = raw.get("storage") or {}
    if not isinstance(storage, dict) or not all(isinstance(v, str) for v in storage.values()):
        errors.add(f"{ptr}/storage", "a mapping of location names to paths or URLs")
        storage = {}
    retention = raw.get("retention_days", 0)
    if not isinstance(retention, int) or retention < 0:
        errors.add(f"{ptr}/retention_days", "a whole number of days, 0 to keep until purged")
        retention = 0
    logs = raw.get("logs") or "airlock"  # absent or empty: the default
    if logs not in LOG_MODES:
        errors.add(f"{ptr}/logs", f"one of {sorted(LOG_MODES)} (airlock: the engine's log "
                   "leaves only through a release request)")
        logs = "airlock"
    return Project(id=str(pid), title=str(raw.get("title", pid)), entitlements=ents,
                   retention_days=retention, logs=str(logs),
                   posix_group=str(raw.get("posix_group", "")),
                   slurm_account=str(raw.get("slurm_account", "")), storage=storage,
                   airlock=airlock, visibility=str(visibility))


def _role(i: int, raw: Any, projects: set[str], errors: _Errors) -> RoleRule | None:
    ptr = f"/roles/{i}"
    if not isinstance(raw, dict):
        errors.add(ptr, "must be a mapping")
        return None
    errors.unknown_keys(ptr, raw, {"role", "project", "entitlement"})
    role, project = raw.get("role"), raw.get("project", GLOBAL)
    if role not in ROLES:
        errors.add(f"{ptr}/role", f"one of {sorted(ROLES)}")
    if project != GLOBAL and project not in projects:
        errors.add(f"{ptr}/project", f"'*' or a project id of this policy, not {project!r}")
    ent = entitlement_or_error(raw.get("entitlement"))
    if isinstance(ent, str):
        errors.add(f"{ptr}/entitlement", ent)
        return None
    return RoleRule(role=str(role), project=str(project), entitlement=ent)


def _dataset(i: int, raw: Any, projects: set[str], errors: _Errors) -> Dataset | None:
    ptr = f"/datasets/{i}"
    if not isinstance(raw, dict):
        errors.add(ptr, "must be a mapping")
        return None
    errors.unknown_keys(ptr, raw, {"id", "location", "projects", "visa", "description"})
    did, location = raw.get("id"), raw.get("location")
    if not isinstance(did, str) or not _ID.match(did):
        errors.add(f"{ptr}/id", "required: lower-case letters, digits, '-' and '_'")
    if not isinstance(location, str) or not (location.startswith("/")
                                             or location.startswith("s3://")):
        errors.add(f"{ptr}/location", "an absolute path or s3://bucket/prefix")
    elif _has_dot_or_empty_segment(location):
        errors.add(f"{ptr}/location", "no '.', '..' or empty segments (write the location "
                                      "as it is meant)")
    members = [str(p) for p in _list(raw, "projects", ptr, errors)]
    for j, p in enumerate(members):
        if p not in projects:
            errors.add(f"{ptr}/projects/{j}", f"unknown project {p!r}")
    visa = _visa_rule(raw.get("visa"), f"{ptr}/visa", errors)
    if not members and visa is None:
        errors.add(ptr, "needs projects and/or a visa rule (deny by default)")
    return Dataset(id=str(did), location=str(location), projects=tuple(members), visa=visa,
                   description=str(raw.get("description", "")))


def _has_dot_or_empty_segment(location: str) -> bool:
    body = location[len("s3://"):] if location.startswith("s3://") else location[1:]
    return any(part in ("", ".", "..") for part in body.rstrip("/").split("/"))


def _datasets(data: dict[str, Any], projects: set[str], errors: _Errors) -> list[Dataset]:
    """The datasets; locations must not nest (a dataset inside another would be readable
    through the outer one's authorisation)."""
    parsed = [(i, d) for i, raw in enumerate(_list(data, "datasets", "", errors))
              if (d := _dataset(i, raw, projects, errors)) is not None]
    usable = [(f"/datasets/{i}/location", d.id, d.location) for i, d in parsed
              if d.location.startswith(("/", "s3://"))
              and not _has_dot_or_empty_segment(d.location)]
    for ptr, problem in nested_locations(usable):
        errors.add(ptr, problem)
    return [d for _, d in parsed]


def _visa_rule(raw: Any, ptr: str, errors: _Errors) -> VisaRule | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), str):
        errors.add(ptr, "a mapping with value (the dataset URL) and sources (DAC URLs)")
        return None
    errors.unknown_keys(ptr, raw, {"value", "sources", "require_by"})
    sources = raw.get("sources")
    if not isinstance(sources, list) or not sources:
        errors.add(f"{ptr}/sources", "at least one trusted source (DAC)")
        sources = []
    return VisaRule(value=raw["value"], sources=tuple(str(s) for s in sources),
                    require_by=bool(raw.get("require_by", True)))


def _posix_accounts(raw: Any, errors: _Errors) -> dict[str, str]:
    """``sub`` (or user name) -> POSIX account of the cluster."""
    if not isinstance(raw, dict):
        errors.add("/posix_accounts", "a mapping of sub or user name to a POSIX account")
        return {}
    for key, value in raw.items():
        if not isinstance(value, str) or not POSIX_NAME.match(value):
            errors.add(f"/posix_accounts/{_escape(str(key))}", "a POSIX user name")
    return {str(k): str(v) for k, v in raw.items()}


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def parse_policy(data: Any) -> Policy:
    """A ``Policy``, or ``InvalidRequest`` listing every problem with its pointer."""
    errors = _Errors()
    if not isinstance(data, dict):
        raise InvalidRequest("the policy must be a mapping", [("", "not a mapping")])
    errors.unknown_keys("", data, _TOP)
    projects = [p for i, raw in enumerate(_list(data, "projects", "", errors))
                if (p := _project(i, raw, errors)) is not None]
    ids = [p.id for p in projects]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        errors.add("/projects", f"duplicate project id {dup!r}")
    known = set(ids)
    roles = [r for i, raw in enumerate(_list(data, "roles", "", errors))
             if (r := _role(i, raw, known, errors)) is not None]
    datasets = _datasets(data, known, errors)
    dataset_ids = [d.id for d in datasets]
    for dup in sorted({i for i in dataset_ids if dataset_ids.count(i) > 1}):
        errors.add("/datasets", f"duplicate dataset id {dup!r}")
    authorities = _list(data, "trusted_authorities", "", errors)
    issuers = data.get("visa_issuers") or {}
    if not isinstance(issuers, dict) or not all(
            isinstance(v, list) and all(isinstance(u, str) for u in v) for v in issuers.values()):
        errors.add("/visa_issuers", "a mapping of visa issuer (iss) to a list of trusted jku URLs")
        issuers = {}
    max_age = data.get("visa_max_age_seconds", 365 * 86400)
    if not isinstance(max_age, int) or max_age <= 0:
        errors.add("/visa_max_age_seconds", "a positive integer")
        max_age = 1
    accounts = _posix_accounts(data.get("posix_accounts") or {}, errors)
    for i, project in enumerate(projects):
        if project.posix_group and not POSIX_NAME.match(project.posix_group):
            errors.add(f"/projects/{i}/posix_group", "a POSIX group name")
    if errors:
        raise InvalidRequest("the policy file is invalid", list(errors))
    return Policy(projects={p.id: p for p in projects}, roles=tuple(roles),
                  datasets={d.id: d for d in datasets},
                  trusted_authorities=frozenset(str(a) for a in authorities),
                  visa_issuers={str(k): tuple(v) for k, v in issuers.items()},
                  visa_max_age_seconds=max_age, posix_accounts=accounts)
