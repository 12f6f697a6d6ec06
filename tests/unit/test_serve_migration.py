"""`spe serve` migrates the database in a child process (`spe db upgrade`), so Alembic
never loads into the serving process; a failed migration stops the start with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_a_failed_migration_stops_serve_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {"SPE_HOME": str(home), "PATH": "/usr/bin:/bin",
           "SPE_DATABASE_URL": "postgresql+psycopg://spe@127.0.0.1:1/spe"}  # nothing listens
    done = subprocess.run([sys.executable, "-m", "spe.cli.main", "serve"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "the database migration failed" in done.stderr
    assert "Traceback" not in done.stderr

