"""Where the tests find the official GA4GH documents (WES 1.1.0, ...).

They are not part of the repository. ``SPE_GA4GH_SPECS`` names the directory that holds
them; without it, ``<repo>/../shared/reference/ga4gh`` is used when that directory exists
(developer and CI machines keep a ``shared`` folder beside the checkout). Assertions that
need a document the tests cannot find are skipped with that reason; a fresh clone with
nothing beside it still runs everything else. ``SPE_REQUIRE_GA4GH_SPECS=1`` (set by
``scripts/test.sh``) turns that skip into a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "reference" / "ga4gh"
WES_DOCUMENT = "wes-1.1.0.openapi.yaml"
TES_DOCUMENT = "tes-1.1.0.openapi.yaml"


def specs_dir() -> Path | None:
    """The directory of the official documents: ``SPE_GA4GH_SPECS`` if set, else the
    default beside the checkout if it exists, else None."""
    configured = os.environ.get("SPE_GA4GH_SPECS")
    if configured:
        return Path(configured).expanduser()
    return DEFAULT if DEFAULT.is_dir() else None


def find(name: str) -> Path | None:
    """The official document ``name``, or None if the tests cannot find it."""
    directory = specs_dir()
    if directory is None:
        return None
    path = directory / name
    return path if path.is_file() else None


def missing_reason(name: str) -> str:
    """Why ``name`` cannot be found, for a skip (or a failure) message."""
    directory = specs_dir()
    if directory is None:
        return (f"official GA4GH document {name} not available: SPE_GA4GH_SPECS is not set "
                f"and {DEFAULT} does not exist")
    return (f"official GA4GH document {name} not available: no such file in {directory} "
            "(SPE_GA4GH_SPECS or the default beside the checkout)")


def require(name: str) -> Path:
    """The official document ``name``; skips the calling test (fails it under
    ``SPE_REQUIRE_GA4GH_SPECS=1``) if it cannot be found."""
    path = find(name)
    if path is not None:
        return path
    if os.environ.get("SPE_REQUIRE_GA4GH_SPECS") == "1":
        pytest.fail("SPE_REQUIRE_GA4GH_SPECS=1 but " + missing_reason(name))
    pytest.skip(missing_reason(name))
