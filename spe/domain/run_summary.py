"""What a run listing and a status answer need of a run, and nothing more: read by a
narrow query (a few columns, no JSON decoded), never built from a full ``Run``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple, Protocol

from spe.domain.states import RunState


class Owned(Protocol):
    """What authorisation reads of a run: a full ``Run`` or a ``RunSummary``."""

    @property
    def id(self) -> str: ...

    @property
    def owner_sub(self) -> str: ...

    @property
    def project(self) -> str: ...


class RunSummary(NamedTuple):
    """A tuple: a page builds a hundred of these per request, and a tuple is the cheapest
    immutable record to build."""

    id: str
    owner_sub: str
    project: str
    state: RunState
    start_time: datetime | None
    end_time: datetime | None
    seq: int
    tags: Mapping[str, str]
    workflow: str = ""  # <id>@<version>
    kind: str = "run"
