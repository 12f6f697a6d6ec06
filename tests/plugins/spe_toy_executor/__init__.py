"""A toy site executor, installed the way a site installs one: a distribution whose entry
point ``spe.executors: toy`` names ``make``. It simulates processes by the clock (as the
tests' fake executor does) on one module-wide "machine", so a fresh instance re-attaches to
earlier handles, as after a restart."""

from __future__ import annotations

from typing import Any

from spe.domain.ports import ExecutorChoice
from tests.fakes import FakeExecutor, FakeProcess

MACHINE: dict[str, FakeProcess] = {}


class ToyExecutor(FakeExecutor):
    name = "toy"


def make(settings: Any, policy: Any) -> ExecutorChoice:
    return ExecutorChoice(ToyExecutor(MACHINE))
