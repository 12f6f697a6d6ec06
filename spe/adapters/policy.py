"""Reads the policy file (YAML) and provides the built-in policy of the embedded default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from spe.domain.errors import InvalidRequest
from spe.domain.policy import Policy, nested_locations
from spe.domain.policy_file import parse_policy

DEV_AUTHORITY = "dev.invalid"
# synthetic cohorts shipped with the repository, readable by the `demo` project
DEMO_DATASET = Path(__file__).resolve().parents[2] / "examples" / "datasets" / "demo-cohorts"
DEV_NAMESPACE = "urn:geant:dev.invalid"

# The embedded default: one project, `demo`; `spe dev token` grants its membership.
DEV_POLICY: dict[str, Any] = {
    "trusted_authorities": [DEV_AUTHORITY],
    "projects": [{
        "id": "demo", "title": "Development project of the embedded default",
        "entitlements": [f"{DEV_NAMESPACE}:group:spe:demo"], "visibility": "owner",
    }],
    "roles": [
        {"role": "reviewer", "project": "demo",
         "entitlement": f"{DEV_NAMESPACE}:group:spe:demo:role=reviewer"},
        {"role": "operator", "project": "*",
         "entitlement": f"{DEV_NAMESPACE}:group:spe:operators"},
    ],
    "datasets": [{
        "id": "demo-cohorts", "location": str(DEMO_DATASET), "projects": ["demo"],
        "description": "Two synthetic cohort tables (cohort_a.tsv, cohort_b.tsv)",
    }],
}


def dev_entitlement(group: str) -> str:
    """The entitlement string the development issuer puts in tokens for ``group``
    (``spe:demo``, ``spe:demo:role=reviewer``, ``spe:operators``)."""
    return f"{DEV_NAMESPACE}:group:{group}#{DEV_AUTHORITY}"


def load_policy(path: Path) -> Policy:
    """The policy in ``path``; ``InvalidRequest`` naming every problem otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidRequest(f"cannot read the policy file {path}: {exc}") from exc
    policy = parse_policy(data)
    check_resolved_locations(policy)
    return policy


def check_resolved_locations(policy: Policy) -> None:
    """The filesystem locations must not nest once symlinks are resolved either (a
    dataset at ``/data/link`` pointing into another one's folder)."""
    resolved = [(f"/datasets/{i}/location", ds.id, os.path.realpath(ds.location))
                for i, ds in enumerate(policy.datasets.values())
                if ds.location.startswith("/")]
    problems = [(ptr, f"{problem} (symlinks resolved)")
                for ptr, problem in nested_locations(resolved)]
    if problems:
        raise InvalidRequest("the policy file is invalid", problems)


def dev_policy() -> Policy:
    return parse_policy(DEV_POLICY)
