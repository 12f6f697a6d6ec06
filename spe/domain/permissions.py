"""Who may do what: one table, checked in one place (``allowed``), deny by default.

A permission is granted by a *relation* between the caller and the resource. Services
name permissions through ``permission("...")`` at import time, so an unknown name fails
when the module is imported, not when a request arrives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from spe.domain.policy import Access


class Relation(StrEnum):
    ANYONE = "anyone authenticated"
    OWNER = "owner of the run (or requester), while a member of its project"
    PROJECT_SHARED = "member of the run's project, where the project shares runs"
    PROJECT_RESEARCHER = "researcher in the project"
    PROJECT_REVIEWER = "reviewer in the project"
    OPERATOR = "operator"


R = Relation

# permission -> the relations that grant it. Operators see run metadata everywhere, but
# never logs or file contents (see WITHHELD).
PERMISSIONS: dict[str, frozenset[Relation]] = {
    "catalog.list": frozenset({R.ANYONE}),
    "me.read": frozenset({R.ANYONE}),
    "run.list": frozenset({R.ANYONE}),  # filtered to what run.read allows
    "run.submit": frozenset({R.PROJECT_RESEARCHER}),
    "run.read": frozenset({R.OWNER, R.PROJECT_SHARED, R.OPERATOR}),
    # the engine's raw log, only where the project opted in (``logs: direct``)
    "run.read_logs": frozenset({R.OWNER, R.PROJECT_SHARED}),
    "run.cancel": frozenset({R.OWNER, R.OPERATOR}),
    "run.purge": frozenset({R.OWNER, R.OPERATOR}),
    "dataset.list": frozenset({R.ANYONE}),  # filtered to what the policy grants
    "audit.read": frozenset({R.OPERATOR}),
    # the airlock; the resource is a release request: its project and its requester
    "release.request": frozenset({R.OWNER}),  # of the run
    "release.read": frozenset({R.OWNER, R.PROJECT_REVIEWER, R.OPERATOR}),
    "release.review": frozenset({R.PROJECT_REVIEWER}),  # never the requester: see Airlock
    "release.preview": frozenset({R.PROJECT_REVIEWER}),
    "release.download": frozenset({R.OWNER}),
    "release.revoke": frozenset({R.PROJECT_REVIEWER, R.OPERATOR}),
}


# permission -> relations that withhold it even when another relation grants it. An operator
# role in the run's project (or the global one) never reads engine logs, although a
# project operator's entitlement usually makes them a member too; the run's owner keeps
# what ownership grants.
WITHHELD: dict[str, frozenset[Relation]] = {
    "run.read_logs": frozenset({R.OPERATOR}),
}


def permission(name: str) -> str:
    """``name`` if it is in the table; raises ``KeyError`` (at import time) otherwise."""
    if name not in PERMISSIONS:
        raise KeyError(f"unknown permission {name!r}; known: {sorted(PERMISSIONS)}")
    return name


@dataclass(frozen=True)
class Resource:
    """What a permission is checked against: a run (owner, project) or a project."""

    project: str = ""
    owner_sub: str = ""
    shared: bool = False  # the project's runs are visible to its members


def is_member(access: Access, project: str) -> bool:
    """``project``'s member NOW: holds one of its entitlements (every member is a
    researcher there). A reviewer or operator role alone is not membership."""
    return "researcher" in access.projects.get(project, ())


def member_projects(access: Access) -> tuple[str, ...]:
    """The projects ``access`` is a member of now, sorted."""
    return tuple(sorted(p for p in access.projects if is_member(access, p)))


def relations(access: Access, resource: Resource) -> set[Relation]:
    found = {R.ANYONE}
    member = bool(resource.project) and is_member(access, resource.project)
    if member and resource.owner_sub and resource.owner_sub == access.principal.sub:
        found.add(R.OWNER)  # ownership alone is not enough: an ex-member owns nothing
    roles = access.roles_in(resource.project) if resource.project else frozenset()
    if resource.shared and resource.project in access.projects:
        found.add(R.PROJECT_SHARED)
    if member:
        found.add(R.PROJECT_RESEARCHER)
    if "operator" in access.global_roles or "operator" in roles:
        found.add(R.OPERATOR)
    if "reviewer" in roles:
        found.add(R.PROJECT_REVIEWER)
    return found


def allowed(access: Access, name: str, resource: Resource) -> bool:
    """The one check. Unknown permission names are refused loudly."""
    held = relations(access, resource)
    if WITHHELD.get(permission(name), frozenset()) & held and R.OWNER not in held:
        return False
    return bool(PERMISSIONS[name] & held)
