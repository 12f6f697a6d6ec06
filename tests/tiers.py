"""The fast tier, ``pytest -m "not external"``, and the ``external`` marker that leaves out
of it every test needing a system outside this Python process: PostgreSQL, Redis and Celery
workers, the S3 server, Chromium, SLURM, a ``spe serve`` subprocess (``tests/helpers.py``
``Server``) and the real workflow runs such a server executes.

``tests/conftest.py`` marks tests at collection (``mark_external``), by:

- directory: every test under ``EXTERNAL_DIRS`` drives a real server or cluster;
- fixture: a test that uses one of ``EXTERNAL_FIXTURES`` (directly or through another
  fixture);
- parameter: a test whose parametrized fixture takes one of ``EXTERNAL_PARAMS`` (the
  PostgreSQL, S3, Celery and SLURM variants of the contract suites);
- marker: a test marked ``postgres`` or ``slow``;
- or by hand, ``pytestmark = pytest.mark.external`` in a module that starts a server in
  its test bodies.

Every test helper that starts such a system calls ``starting`` first, which fails the test
that asked for it unless that test is marked ``external``: a fast-tier test cannot quietly
start a service (nor a fresh clone's fast tier need one)."""

from __future__ import annotations

from pathlib import Path

import pytest

MARKER = "external"
TESTS = Path(__file__).resolve().parent
EXTERNAL_DIRS = frozenset({"airlock", "api", "celery", "chaos", "package", "security", "slurm",
                           "tes", "ui"})
EXTERNAL_FIXTURES = frozenset({
    "server", "api",                        # the session's `spe serve` (tests/conftest.py)
    "postgres_server", "redis_server",      # tests/conftest.py
    "s3_server", "s3_bucket",               # tests/contract/test_object_store_contract.py
    "cluster",                              # tests/celery and tests/slurm
    "slurm_api_server", "slurm_home",       # tests/slurm/conftest.py
    "queue_url", "own_redis",               # tests/contract/test_dispatcher_contract.py
})
EXTERNAL_PARAMS = frozenset({"postgres", "s3", "celery", "slurm"})
EXTERNAL_MARKERS = ("postgres", "slow")

_running: list[pytest.Item] = []  # the test being set up, run or torn down


def needs_external(item: pytest.Item) -> str | None:
    """Why ``item`` belongs to the external tier, or None if it runs in the fast tier."""
    path = Path(str(item.path)).resolve()
    if path.is_relative_to(TESTS):
        parts = path.relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in EXTERNAL_DIRS:
            return f"in tests/{parts[0]}"
    used = EXTERNAL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used:
        return f"uses the fixture {sorted(used)[0]}"
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for name, value in callspec.params.items():
            if isinstance(value, str) and value in EXTERNAL_PARAMS:
                return f"{name}={value}"
    for marker in (*EXTERNAL_MARKERS, MARKER):
        if item.get_closest_marker(marker):
            return f"marked {marker}"
    return None


def mark_external(items: list[pytest.Item]) -> None:
    for item in items:
        if needs_external(item) and not item.get_closest_marker(MARKER):
            item.add_marker(MARKER)


def running(item: pytest.Item | None) -> None:
    """``tests/conftest.py`` says which test is running (None: none)."""
    _running[:] = [item] if item is not None else []


def starting(what: str) -> None:
    """Called by the helpers that start an external system, before they start it: fails
    the running test unless it is marked ``external``."""
    if _running and not _running[0].get_closest_marker(MARKER):
        pytest.fail(f"{_running[0].nodeid} starts {what} but is not marked {MARKER!r}: "
                    "see tests/tiers.py for how tests are marked", pytrace=False)
