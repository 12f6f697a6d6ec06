"""Helpers of the site-kit tests: the shipped files, profile loading and mutation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from spe.domain.site_profile import SiteReport, check_profile

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "bibigrid"
SITES = KIT / "sites"
ROLE = KIT / "roles" / "spe_cluster"
DELETE = object()


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def profile(name: str = "bielefeld") -> dict[str, Any]:
    data: dict[str, Any] = load(SITES / f"{name}.yaml")
    return data


def base_master() -> dict[str, Any]:
    master: dict[str, Any] = load(KIT / "bibigrid.yaml")[0]
    return master


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((KIT / "site-profile.schema.json").read_text())
    return data


def check(doc: Any, strict: bool = False, base: dict[str, Any] | None = None) -> SiteReport:
    return check_profile(doc, base_master() if base is None else base, schema(), strict=strict)


def mutated(doc: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``value`` set at ``pointer`` (``DELETE`` removes it);
    missing mappings on the way are created."""
    out = copy.deepcopy(doc)
    *parents, last = pointer.split("/")[1:]
    node: Any = out
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node.setdefault(token, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    elif isinstance(node, list) and key == len(node):
        node.append(value)
    else:
        node[key] = value
    return out


def pointers(report: SiteReport) -> list[str]:
    return [p.pointer for p in report.errors]
