"""Site profiles of the SPE's BiBiGrid cluster (bibigrid/sites/*.yaml): the schema check,
the merge over the base configuration (bibigrid/bibigrid.yaml) and the semantic rules
(``site_rules``), every problem with the JSON pointer of its value in the profile."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from spe.domain import site_rules
from spe.domain.site_rules import Problem, escape

MAX_ERRORS = 100
_ABSENT = object()
# keys people carry over from older BiBiGrid releases or the docs' spelling
HINTS = {
    "localDNSLookup": "BiBiGrid 3.1 spells it localDNSlookup",
    "useMasterWithPublicIP": "BiBiGrid 3.1 spells it useMasterWithPublicIp",
    "availabilityZone": "removed from BiBiGrid; record it in /site/availability_zone",
    "region": "removed from BiBiGrid; the region comes from clouds.yaml",
    "masterMounts": "deprecated: use masterInstance.volumes",
    "vpnwkr": "BiBiGrid 3.1 calls it vpnInstance (other configurations only)",
}


@dataclass(frozen=True)
class SiteReport:
    """What ``spe site check`` prints: errors (exit 1), warnings (unconfirmed examples) and,
    when the profile is valid, the merged document ``spe site render`` writes out."""

    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...] = ()
    document: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` over ``base``: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = copy.deepcopy(base)
        for key, value in overlay.items():
            merged[key] = merge(base.get(key, _ABSENT), value)
        return merged
    return copy.deepcopy(overlay)


def resolve(doc: Any, pointer: str) -> Any:
    """The value at ``pointer`` in ``doc``, or ``site_profile._ABSENT``."""
    node = doc
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return _ABSENT
    return node


def exists(doc: Any, pointer: str) -> bool:
    return resolve(doc, pointer) is not _ABSENT


def _path(err: ValidationError) -> str:
    return "".join(f"/{escape(p)}" for p in err.absolute_path)


def _unknown_keys(err: ValidationError) -> list[Problem]:
    allowed = set(err.schema.get("properties", {})) if isinstance(err.schema, dict) else set()
    return [Problem(f"{_path(err)}/{escape(key)}",
                    "unknown key" + (f": {HINTS[key]}" if key in HINTS else
                                     f" (allowed: {', '.join(sorted(allowed))})"))
            for key in sorted(set(err.instance) - allowed)]


def _missing_keys(err: ValidationError) -> list[Problem]:
    return [Problem(f"{_path(err)}/{escape(key)}", "required")
            for key in err.validator_value if key not in err.instance]


def schema_problems(profile: Any, schema: dict[str, Any]) -> list[Problem]:
    """The profile against the JSON Schema: unknown and missing keys point at the key."""
    problems: list[Problem] = []
    for err in Draft202012Validator(schema).iter_errors(profile):
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            problems += _unknown_keys(err)
        elif err.validator == "required" and isinstance(err.instance, dict):
            problems += _missing_keys(err)
        else:
            problems.append(Problem(_path(err), err.message[:300]))
    unique = sorted(set(problems), key=lambda p: (p.pointer, p.message))
    return unique[:MAX_ERRORS]


def merged_document(profile: dict[str, Any], base_master: dict[str, Any]) -> dict[str, Any]:
    """The profile with its ``bibigrid`` mapping merged over the base's first configuration."""
    doc = copy.deepcopy(profile)
    doc["bibigrid"] = merge(base_master, profile["bibigrid"])
    return doc


def _where(problem: Problem, profile: dict[str, Any], doc: dict[str, Any]) -> Problem:
    if exists(doc, problem.pointer) and not exists(profile, problem.pointer):
        return Problem(problem.pointer, f"{problem.message} (value from the base bibigrid.yaml)")
    return problem


def _unconfirmed(profile: dict[str, Any]) -> tuple[list[Problem], list[Problem]]:
    errors, warnings = [], []
    for i, pointer in enumerate(profile["site"].get("unconfirmed") or []):
        if exists(profile, pointer):
            warnings.append(Problem(pointer, "example value: not yet confirmed for this site"))
        else:
            errors.append(Problem(f"/site/unconfirmed/{i}", f"{pointer} names no value of "
                                  "this profile"))
    return errors, warnings


def check_profile(profile: Any, base_master: dict[str, Any], schema: dict[str, Any],
                  strict: bool = False) -> SiteReport:
    """Schema first (the rules need its shapes), then the semantic rules on the merged
    document. ``strict`` turns unconfirmed example values into errors."""
    problems = schema_problems(profile, schema)
    if problems:
        return SiteReport(errors=tuple(problems))
    doc = merged_document(profile, base_master)
    errors = [_where(p, profile, doc) for p in site_rules.check(doc)]
    bad_markers, warnings = _unconfirmed(profile)
    errors += bad_markers
    if strict:
        errors += warnings
        warnings = []
    return SiteReport(errors=tuple(errors), warnings=tuple(warnings), document=doc)


def summary(doc: dict[str, Any], warnings: int) -> str:
    """One line about a valid profile."""
    bib, site = doc["bibigrid"], doc["site"]
    workers = bib["workerInstances"]
    elastic = sum(w.get("count", 1) for w in workers if w.get("onDemand") is True)
    line = (f"site {site['id']} (BiBiGrid {site['bibigrid_version']}): master "
            f"{bib['masterInstance']['type']!r}, {len(workers)} worker groups "
            f"({elastic} workers on demand), shares {', '.join(doc['spe']['shares'])}")
    return line + (f"; {warnings} example values to confirm" if warnings else "")
