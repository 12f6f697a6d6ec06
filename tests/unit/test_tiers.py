"""The ``external`` marker (``tests/tiers.py``): which tests leave the fast tier, and the
guard that fails a test starting an external system without the marker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests import tiers

TESTS = Path(__file__).resolve().parents[1]


@dataclass
class Callspec:
    params: dict[str, object]


@dataclass
class Item:
    """What ``needs_external`` and ``starting`` read of a pytest item."""

    path: Path
    fixturenames: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    callspec: Callspec | None = None
    nodeid: str = "tests/x.py::test_x"
    added: list[str] = field(default_factory=list)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in (*self.markers, *self.added) else None

    def add_marker(self, name: str) -> None:
        self.added.append(name)


def _item(**kw: Any) -> pytest.Item:
    return cast(pytest.Item, Item(**kw))


@pytest.fixture(autouse=True)
def _restore_running(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    tiers.running(request.node)  # as tests/conftest.py had it


@pytest.mark.parametrize(("item", "why"), [
    (Item(TESTS / "api/test_x.py"), "in tests/api"),
    (Item(TESTS / "slurm/test_x.py"), "in tests/slurm"),
    (Item(TESTS / "unit/test_x.py", ("tmp_path", "postgres_server")),
     "uses the fixture postgres_server"),
    (Item(TESTS / "unit/test_x.py", ("server",)), "uses the fixture server"),
    (Item(TESTS / "contract/test_x.py", callspec=Callspec({"backend": "s3"})), "backend=s3"),
    (Item(TESTS / "contract/test_x.py", callspec=Callspec({"rig": "slurm"})), "rig=slurm"),
    (Item(TESTS / "contract/test_x.py", markers=("postgres",)), "marked postgres"),
    (Item(TESTS / "integration/test_x.py", markers=("external",)), "marked external"),
])
def test_what_leaves_the_fast_tier_and_why(item: Item, why: str) -> None:
    assert tiers.needs_external(cast(pytest.Item, item)) == why


@pytest.mark.parametrize("item", [
    Item(TESTS / "unit/test_x.py", ("tmp_path", "catalog_dir")),
    Item(TESTS / "contract/test_x.py", callspec=Callspec({"backend": "filesystem"})),
    Item(TESTS / "contract/test_x.py", callspec=Callspec({"rig": "local", "n": 3})),
    Item(TESTS / "inprocess/test_x.py", ("spe",)),
    Item(TESTS / "unit/api/test_x.py"),  # only the top directory under tests/ counts
])
def test_what_stays_in_the_fast_tier(item: Item) -> None:
    assert tiers.needs_external(cast(pytest.Item, item)) is None


def test_mark_external_adds_the_marker_once() -> None:
    items = [Item(TESTS / "ui/test_x.py"), Item(TESTS / "unit/test_x.py"),
             Item(TESTS / "celery/test_x.py", markers=("external",))]
    tiers.mark_external(cast(list[pytest.Item], items))
    assert [i.added for i in items] == [["external"], [], []]


def test_starting_a_system_in_an_unmarked_test_fails_naming_the_test() -> None:
    tiers.running(_item(path=TESTS / "unit/test_x.py", nodeid="tests/unit/test_x.py::t"))
    with pytest.raises(pytest.fail.Exception,
                       match=r"tests/unit/test_x.py::t starts PostgreSQL but is not marked"):
        tiers.starting("PostgreSQL")


def test_starting_a_system_in_a_marked_test_or_outside_a_test_is_allowed() -> None:
    tiers.running(_item(path=TESTS / "api/test_x.py", markers=("external",)))
    tiers.starting("PostgreSQL")
    tiers.running(None)
    tiers.starting("PostgreSQL")


def test_this_test_itself_runs_in_the_fast_tier(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("external") is None
    with pytest.raises(pytest.fail.Exception, match="not marked 'external'"):
        tiers.starting("a `spe serve` subprocess")
