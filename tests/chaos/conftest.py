"""The chaos suite is opt-in: it runs with ``-m chaos`` or SPE_CHAOS=1 (``scripts/test.sh``
sets it, at the CI size), and is skipped with that reason otherwise. SPE_CHAOS_RUNS sets
how many runs each scenario submits (CI: 40; the full size: 280), SPE_CHAOS_SEED the seed."""

from __future__ import annotations

import os

import pytest

from tests.chaos.monkey import REPORT


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SPE_CHAOS") == "1" or "chaos" in (config.option.markexpr or ""):
        return  # the suite was asked for
    skip = pytest.mark.skip(reason="the chaos suite is opt-in: SPE_CHAOS=1 or -m chaos")
    for item in items:
        if item.get_closest_marker("chaos"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in REPORT:
        terminalreporter.write_line(line)


def chaos_runs() -> int:
    return int(os.environ.get("SPE_CHAOS_RUNS", "40"))


def chaos_seed() -> int:
    return int(os.environ.get("SPE_CHAOS_SEED", "20261205"))
