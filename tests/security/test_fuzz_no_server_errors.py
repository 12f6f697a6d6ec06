"""A bounded, deterministic schemathesis run against our own OpenAPI documents, on a real
server: no generated request may produce a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, Server


@pytest.mark.parametrize(("document", "base"), [("wes.yaml", "/ga4gh/wes/v1"),
                                                ("spe.yaml", "/spe/v1")])
def test_schemathesis_finds_no_server_error(server: Server, document: str, base: str) -> None:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [exe, "run", str(ROOT / "spe" / "openapi" / document), "--url", server.url + base,
         "-H", f"Authorization: Bearer {server.token('fuzzer')}",
         "--checks", "not_a_server_error", "--max-examples", "30",
         "--generation-deterministic", "--phases", "examples,coverage,fuzzing",
         "--workers", "1", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=600, check=False, cwd=server.home)
    tail = result.stdout[-3000:]
    assert result.returncode == 0, tail
    assert "generated" in tail and "Server error" not in tail
