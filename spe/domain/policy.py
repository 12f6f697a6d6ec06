"""The site policy: projects, roles and datasets, and what a verified identity is granted.

Membership comes from group entitlements (``spe.domain.identity``): a principal is a
member of a project when it holds one of the project's entitlements (same namespace and
group path; a ``role=`` suffix does not matter). Every member is a ``researcher`` there.
Role rules add ``reviewer`` or ``operator``, in one project or globally (``project: "*"``).
Datasets are readable by members of their projects and/or by holders of a valid
ControlledAccessGrants visa for their ``visa.value`` from a listed source."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from spe.domain.errors import Forbidden
from spe.domain.identity import Entitlement, Visa, parse_entitlement
from spe.domain.models import Principal
from spe.domain.ports import JobAccount

POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")  # what useradd accepts (no trailing $)
ROLES = frozenset({"researcher", "reviewer", "operator"})
VISIBILITIES = frozenset({"owner", "project"})
# how a project's researchers see the engine's raw log of their runs: only as a file a
# release request names ("airlock", the default), or also directly, each read audited
# ("direct": for projects whose data are not sensitive)
LOG_MODES = frozenset({"airlock", "direct"})
GLOBAL = "*"


@dataclass(frozen=True)
class Project:
    id: str
    title: str
    entitlements: tuple[Entitlement, ...]
    posix_group: str = ""
    slurm_account: str = ""
    storage: dict[str, str] = field(default_factory=dict)
    airlock: dict[str, Any] = field(default_factory=dict)
    visibility: str = "owner"
    retention_days: int = 0  # 0: a run's data is kept until purged by hand
    logs: str = "airlock"  # one of LOG_MODES


@dataclass(frozen=True)
class RoleRule:
    role: str
    project: str  # a project id, or "*" for every project
    entitlement: Entitlement


@dataclass(frozen=True)
class VisaRule:
    value: str
    sources: tuple[str, ...]
    require_by: bool = True


@dataclass(frozen=True)
class Dataset:
    id: str
    location: str
    projects: tuple[str, ...] = ()
    visa: VisaRule | None = None
    description: str = ""

    @property
    def prefix(self) -> str:
        """The location as a prefix ending in ``/`` (``/data/x/``, ``s3://bucket/p/``): a
        path or URI lies inside the dataset when it starts with this."""
        return location_prefix(self.location)


def location_prefix(location: str) -> str:
    return location.rstrip("/") + "/"


def nested_locations(locations: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """``(pointer, problem)`` for every location of ``(pointer, id, location)`` that lies
    inside (or is) an earlier one or holds an earlier one: one place, one authorisation."""
    problems = []
    for j, (ptr, _, location) in enumerate(locations):
        for other_ptr, other_id, other in locations[:j]:
            mine, theirs = location_prefix(location), location_prefix(other)
            if mine.startswith(theirs) or theirs.startswith(mine):
                problems.append((ptr, f"overlaps {other_ptr.rsplit('/', 1)[0]} ({other_id!r} "
                                      f"at {other}): dataset locations must not lie inside "
                                      "one another"))
    return problems


@dataclass(frozen=True)
class Access:
    """What one principal may act as: roles per project, global roles, datasets."""

    principal: Principal
    projects: dict[str, frozenset[str]]
    global_roles: frozenset[str]
    datasets: tuple[str, ...]

    def roles_in(self, project: str) -> frozenset[str]:
        return self.projects.get(project, frozenset()) | self.global_roles

    @property
    def is_operator(self) -> bool:
        return "operator" in self.global_roles


def _same_group(held: Entitlement, wanted: Entitlement) -> bool:
    return (held.namespace, held.groups) == (wanted.namespace, wanted.groups)


def _holds(principal: Principal, wanted: Entitlement, with_role: bool) -> bool:
    return any(_same_group(e, wanted) and (not with_role or e.role == wanted.role)
               for e in principal.entitlements)


@dataclass(frozen=True)
class Policy:
    projects: dict[str, Project]
    roles: tuple[RoleRule, ...] = ()
    datasets: dict[str, Dataset] = field(default_factory=dict)
    trusted_authorities: frozenset[str] = frozenset()
    visa_issuers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    visa_max_age_seconds: int = 365 * 86400
    posix_accounts: dict[str, str] = field(default_factory=dict)

    def project(self, project_id: str) -> Project | None:
        return self.projects.get(project_id)

    def job_account(self, owner_sub: str, owner_name: str, project_id: str) -> JobAccount:
        """Whom a run's cluster jobs run as: the POSIX account mapped to the owner's ``sub``
        (or user name) in ``posix_accounts``, else the user name itself when it is a valid
        POSIX name; the project's POSIX group and SLURM account. Deny by default:
        ``Forbidden`` when any of them is missing."""
        user = self.posix_accounts.get(owner_sub) or self.posix_accounts.get(owner_name) \
            or owner_name
        project = self.projects.get(project_id)
        if not POSIX_NAME.match(user):
            raise Forbidden(f"no POSIX account is mapped to {owner_name!r}; ask the operators "
                            "to add one to the policy's posix_accounts")
        if project is None or not project.posix_group:
            raise Forbidden(f"project {project_id!r} has no posix_group; its runs cannot "
                            "execute on the cluster")
        return JobAccount(user=user, group=project.posix_group,
                          slurm_account=project.slurm_account)

    def access(self, principal: Principal, now: float) -> Access:
        projects: dict[str, set[str]] = {}
        for project in self.projects.values():
            if any(_holds(principal, e, with_role=False) for e in project.entitlements):
                projects[project.id] = {"researcher"}
        global_roles: set[str] = set()
        for rule in self.roles:
            if not _holds(principal, rule.entitlement, with_role=True):
                continue
            if rule.project == GLOBAL:
                global_roles.add(rule.role)
            elif rule.project in self.projects:
                projects.setdefault(rule.project, set()).add(rule.role)
        frozen = {p: frozenset(r) for p, r in projects.items()}
        datasets = tuple(sorted(d.id for d in self.datasets.values()
                                if self._may_read(d, principal, frozen, now)))
        return Access(principal, frozen, frozenset(global_roles), datasets)

    @staticmethod
    def _may_read(dataset: Dataset, principal: Principal, projects: dict[str, frozenset[str]],
                  now: float) -> bool:
        if any(p in projects for p in dataset.projects):
            return True
        rule = dataset.visa
        return rule is not None and any(_grants(v, rule, now) for v in principal.visas)


def _grants(visa: Visa, rule: VisaRule, now: float) -> bool:
    return (visa.type == "ControlledAccessGrants" and visa.value == rule.value
            and visa.source in rule.sources and now < visa.valid_until
            and (bool(visa.by) or not rule.require_by))


def entitlement_or_error(raw: object) -> Entitlement | str:
    """The parsed entitlement, or an error message for the policy loader."""
    if not isinstance(raw, str):
        return "must be a string"
    parsed = parse_entitlement(raw if "#" in raw else f"{raw}#policy")
    return parsed if parsed is not None else (
        "not a group entitlement (urn:geant:<ns>:group:<group>[:<sub>...][:role=<r>])")
