"""A bounded, deterministic schemathesis run on TES: our own document, and the official TES
1.1 document (when the tests can find it; tests/ga4gh_specs.py). Every generated request,
valid create bodies included, must get anything but a 5xx.

Known mismatches of the official document, which is why only ``not_a_server_error`` is
checked there (not response conformance):
- it documents only 200 responses, while every error here is a GA4GH ErrorResponse 4xx;
- its ``tesTask`` requires ``executors``, while the MINIMAL view it defines is {id, state}
  (tests/wes_schema.py ``assert_valid_tes`` checks MINIMAL bodies for exactly those keys
  and validates every other response against it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ga4gh_specs import TES_DOCUMENT, find, missing_reason
from tests.helpers import ROOT, Server
from tests.tes.conftest import TES, as_user


def schemathesis(server: Server, document: Path, examples: int) -> str:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [exe, "run", str(document), "--url", server.url + TES,
         "-H", f"Authorization: Bearer {as_user(server, 'alice').token}",
         "--checks", "not_a_server_error", "--max-examples", str(examples),
         "--generation-deterministic", "--phases", "examples,coverage,fuzzing",
         "--workers", "1", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=900, check=False, cwd=server.home)
    tail = result.stdout[-3000:]
    assert result.returncode == 0, tail
    assert "generated" in tail and "Server error" not in tail
    return tail


def test_our_tes_document_finds_no_server_error(tes_server: Server) -> None:
    schemathesis(tes_server, ROOT / "spe" / "openapi" / "tes.yaml", 30)


def test_the_official_tes_document_finds_no_server_error(tes_server: Server) -> None:
    document = find(TES_DOCUMENT)
    if document is None:
        pytest.skip(missing_reason(TES_DOCUMENT))
    schemathesis(tes_server, document, 30)
