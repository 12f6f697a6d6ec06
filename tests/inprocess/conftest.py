"""The in-process service of these tests (``tests/inprocess/harness.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inprocess.harness import InProcess, in_process


@pytest.fixture
def spe(tmp_path: Path, catalog_dir: Path) -> Iterator[InProcess]:
    yield from in_process(tmp_path / "home", catalog_dir)
