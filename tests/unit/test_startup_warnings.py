"""Starting the service prints no warnings: connexion imports starlette's test client,
which warns (StarletteDeprecationWarning, in every server log) unless httpx2 is
installed; pyproject.toml depends on httpx2 for that reason."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_service_and_the_cli_prints_no_warning() -> None:
    out = subprocess.run([sys.executable, "-c", "import spe.app, spe.cli.main"],
                         capture_output=True, text=True, timeout=120, check=True)
    assert "Warning" not in out.stderr, out.stderr
