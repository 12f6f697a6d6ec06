"""Entities of the run domain. Plain dataclasses, no framework types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from spe.domain.identity import Entitlement, Visa
from spe.domain.states import RunState

JSON = dict[str, Any]
T = TypeVar("T")
RUN, TASK = "run", "task"  # the kinds of job: a WES run, a TES task


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. Never carries the token itself.

    ``entitlements`` and ``visas`` are what the identity provider asserted, already
    verified (trusted authority, trusted visa issuer, signature, validity); what they
    allow is decided by the policy (``spe.domain.policy``)."""

    sub: str
    username: str
    email: str = ""
    issuer: str = ""
    entitlements: tuple[Entitlement, ...] = ()
    visas: tuple[Visa, ...] = ()


@dataclass
class RunRequest:
    """What the caller asked for, as WES ``RunRequest`` (already parsed)."""

    workflow_url: str
    workflow_type: str
    workflow_type_version: str
    workflow_params: JSON = field(default_factory=dict)
    workflow_engine: str = ""
    workflow_engine_version: str = ""
    workflow_engine_parameters: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_wes(self) -> JSON:
        body: JSON = {
            "workflow_url": self.workflow_url,
            "workflow_type": self.workflow_type,
            "workflow_type_version": self.workflow_type_version,
            "workflow_params": self.workflow_params,
            "workflow_engine_parameters": dict(self.workflow_engine_parameters),
            "tags": dict(self.tags),
        }
        if self.workflow_engine:
            body["workflow_engine"] = self.workflow_engine
        if self.workflow_engine_version:
            body["workflow_engine_version"] = self.workflow_engine_version
        return body

    @classmethod
    def from_wes(cls, body: JSON) -> RunRequest:
        return cls(
            workflow_url=body["workflow_url"],
            workflow_type=body["workflow_type"],
            workflow_type_version=body["workflow_type_version"],
            workflow_params=body.get("workflow_params") or {},
            workflow_engine=body.get("workflow_engine", ""),
            workflow_engine_version=body.get("workflow_engine_version", ""),
            workflow_engine_parameters=body.get("workflow_engine_parameters") or {},
            tags=body.get("tags") or {},
        )


@dataclass(frozen=True)
class OutputFile:
    """One output of a run: metadata only (its bytes stay in the enclave)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class TaskLog:
    """One job of a workflow run, as the engine reported it."""

    id: str
    name: str
    cmd: tuple[str, ...] = ()
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    system_logs: tuple[str, ...] = ()


@dataclass
class Run:
    """A workflow run. ``seq`` is the store's insertion order, used for paging."""

    id: str
    owner_sub: str
    owner_name: str
    state: RunState
    request: RunRequest
    workflow_id: str
    workflow_version: str
    bundle_digest: str
    engine: str
    engine_options: JSON
    created_at: datetime
    project: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    handle: JSON | None = None
    cmd: tuple[str, ...] = ()
    system_logs: list[str] = field(default_factory=list)
    outputs: list[OutputFile] = field(default_factory=list)
    purged_at: datetime | None = None
    seq: int = 0
    kind: str = "run"  # "run" (WES) or "task" (TES: ``task`` holds its TES document)
    task: JSON | None = None
    name: str = ""

    @property
    def is_task(self) -> bool:
        return self.kind == TASK


@dataclass(frozen=True)
class RunEnding:
    """How a run ended: its final state, when, its exit code, its quarantined outputs and
    the service's own message (a system-log line, or "")."""

    state: RunState
    at: datetime
    exit_code: int | None
    outputs: list[OutputFile]
    note: str = ""


@dataclass(frozen=True)
class SubmissionKey:
    """A client's ``Idempotency-Key`` for one submission: the same key from the same caller
    within the retention window names the same run. ``request_digest`` fingerprints the
    request, so a key reused for another request is told apart."""

    owner_sub: str
    key: str
    request_digest: str
    at: datetime
    window: timedelta = timedelta(hours=24)

    @property
    def since(self) -> datetime:
        """The oldest use of the key that still counts."""
        return self.at - self.window


@dataclass(frozen=True)
class Visibility:
    """Which runs a listing may show: the caller's own in the projects they are a member
    of now (``member_of``: an ex-member's old runs are not theirs to see), those of
    ``projects`` (projects that share runs with their members), or, for operators,
    ``everything``."""

    owner_sub: str
    projects: tuple[str, ...] = ()
    everything: bool = False
    member_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunFilter:
    """Filters of ``GET /runs`` (our documented extension) and ``GET /tasks``: ``kind``
    (runs, tasks, or "" for both), states, tags (every pair must match; a value of None
    matches any value of the key) and a name prefix (tasks)."""

    states: tuple[RunState, ...] = ()
    tags: tuple[tuple[str, str | None], ...] = ()
    kind: str = ""
    name_prefix: str = ""
    workflow: str = ""  # runs: a catalog id, or <id>@<version>


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str = ""


@dataclass(frozen=True)
class AuditEvent:
    """A security-relevant event. ``details`` never holds tokens or file contents."""

    action: str
    actor: str
    outcome: str
    target: str = ""
    details: JSON = field(default_factory=dict)
    at: datetime | None = None
