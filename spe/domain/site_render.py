"""What ``spe site render`` produces from a checked site profile: the configuration list
BiBiGrid reads (secret references replaced by their values) and the variables of the
spe_cluster Ansible role. Pure: secrets arrive through a ``resolve`` callable."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from spe.domain.errors import InvalidRequest
from spe.domain.site_rules import SECRET_REF, Problem, escape

MIN_MUNGE_KEY = 32  # munged refuses shorter keys; BiBiGrid generates 32 characters


class SecretUnavailable(Exception):
    """A secret reference could not be resolved; the message names the reference only."""


@dataclass(frozen=True)
class ProjectAccount:
    """A policy project as the cluster sees it."""

    id: str
    posix_group: str
    slurm_account: str


def secret_references(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(pointer, reference) of every string in ``node`` that is a secret reference."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from secret_references(value, f"{pointer}/{escape(key)}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from secret_references(value, f"{pointer}/{i}")
    elif isinstance(node, str) and SECRET_REF.match(node):
        yield pointer, node


def _put(doc: dict[str, Any], pointer: str, value: str) -> None:
    *parents, last = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    node: Any = doc
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node[token]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _checked(pointer: str, value: str) -> str | None:
    if not value:
        return "the secret is empty"
    if pointer.endswith("/munge_key") and len(value) < MIN_MUNGE_KEY:
        return f"a munge key needs at least {MIN_MUNGE_KEY} characters"
    return None


def bibigrid_configuration(doc: dict[str, Any], base: list[dict[str, Any]],
                           resolve: Callable[[str], str]) -> list[dict[str, Any]]:
    """The configuration list for BiBiGrid: the merged master configuration, then the
    base's further configurations; ``InvalidRequest`` names every secret that fails."""
    master = copy.deepcopy(doc["bibigrid"])
    problems: list[Problem] = []
    for pointer, ref in secret_references(master, "/bibigrid"):
        try:
            value = resolve(ref)
        except SecretUnavailable as exc:
            problems.append(Problem(pointer, str(exc)))
            continue
        if (problem := _checked(pointer, value)) is not None:
            problems.append(Problem(pointer, f"{ref}: {problem}"))
            continue
        _put({"bibigrid": master}, pointer, value)
    if problems:
        raise InvalidRequest("cannot resolve the secrets",
                             [(p.pointer, p.message) for p in problems])
    return [master, *copy.deepcopy(base[1:])]


def _projects(doc: dict[str, Any], projects: list[ProjectAccount]) -> list[dict[str, Any]]:
    gids = doc["spe"].get("project_gids") or {}
    rows, missing = [], []
    for project in projects:
        if not project.posix_group:
            continue
        if project.posix_group not in gids:
            missing.append((f"/spe/project_gids/{escape(project.posix_group)}",
                            f"project {project.id!r}: its posix_group needs a gid"))
            continue
        rows.append({"id": project.id, "posix_group": project.posix_group,
                     "gid": gids[project.posix_group],
                     "slurm_account": project.slurm_account or project.id})
    if missing:
        raise InvalidRequest("the profile lacks gids for policy projects", missing)
    return rows


def role_variables(doc: dict[str, Any], projects: list[ProjectAccount]) -> dict[str, Any]:
    """The vars file of the spe_cluster role (bibigrid/roles/spe_cluster/defaults)."""
    spe = doc["spe"]
    account, engines = spe["service_account"], spe.get("engines") or {}
    variables: dict[str, Any] = {
        "spe_site": doc["site"]["id"],
        "spe_service_user": account["name"],
        "spe_service_group": account["group"],
        "spe_researcher_group": spe["researcher_group"],
        "spe_shares": copy.deepcopy(spe["shares"]),
        "spe_slurm_accounting": bool(spe.get("slurm_accounting", False)),
        "spe_install_nextflow": bool(engines.get("nextflow", False)),
        "spe_projects": _projects(doc, projects),
    }
    for key in ("uid", "gid"):
        if key in account:
            variables[f"spe_service_{key}"] = account[key]
    if "dir" in engines:
        variables["spe_engines_dir"] = engines["dir"]
    return variables
