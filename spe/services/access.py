"""Authorisation of run operations: turns a Principal into its Access under the policy and
applies the permission table (``spe.domain.permissions``) to runs and projects.

Runs a caller may not read do not exist for them (404), so run ids do not leak; a caller
who may read a run but not do the asked thing (an operator reading logs) gets 403."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from spe.domain.errors import Forbidden, NotFound
from spe.domain.models import Principal, Visibility
from spe.domain.permissions import Resource, allowed, member_projects, permission
from spe.domain.policy import Access, Policy
from spe.domain.run_summary import Owned

RUN_READ = permission("run.read")
RUN_SUBMIT = permission("run.submit")
R = TypeVar("R", bound=Owned)


@dataclass
class Gate:
    policy: Policy
    clock: Callable[[], float] = field(default=time.time)

    def access(self, who: Principal) -> Access:
        return self.policy.access(who, self.clock())

    def resource(self, run: Owned) -> Resource:
        project = self.policy.project(run.project)
        return Resource(project=run.project, owner_sub=run.owner_sub,
                        shared=project is not None and project.visibility == "project")

    def check_run(self, who: Principal, run: R | None, perm: str, run_id: str) -> R:
        """``run`` if ``who`` holds ``perm`` on it; NotFound if they may not even read it."""
        access = self.access(who)
        if run is None or not allowed(access, RUN_READ, self.resource(run)):
            raise NotFound(f"run {run_id[:64]!r} not found")
        if not allowed(access, permission(perm), self.resource(run)):
            raise Forbidden(f"{perm} is not allowed on run {run.id}", rule=perm)
        return run

    def submission_project(self, who: Principal, tags: dict[str, str]) -> str:
        """The project a new run belongs to: the ``project`` tag, or the caller's only
        project. Submitting for a project you are not a researcher in: 403."""
        access = self.access(who)
        named = tags.get("project", "")
        if named:
            if not allowed(access, RUN_SUBMIT, Resource(project=named)):
                raise Forbidden(f"you are not a researcher in project {named[:64]!r}",
                                rule=RUN_SUBMIT)
            return named
        mine = sorted(p for p in access.projects
                      if allowed(access, RUN_SUBMIT, Resource(project=p)))
        if len(mine) == 1:
            return mine[0]
        if not mine:
            raise Forbidden("you are not a researcher in any project", rule=RUN_SUBMIT)
        raise Forbidden(f"you are in several projects ({', '.join(mine)}): name one with "
                        "the 'project' tag", rule=RUN_SUBMIT)

    def visibility(self, who: Principal) -> Visibility:
        access = self.access(who)
        shared = tuple(sorted(
            p for p in access.projects
            if "operator" in access.roles_in(p)
            or ((proj := self.policy.project(p)) is not None and proj.visibility == "project")))
        return Visibility(owner_sub=who.sub, projects=shared, everything=access.is_operator,
                          member_of=member_projects(access))
