"""`spe db upgrade` creates the schema from the Alembic migrations, idempotently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect


def test_db_upgrade_creates_every_table_and_can_run_twice(tmp_path: Path) -> None:
    env = {**os.environ, "SPE_HOME": str(tmp_path)}
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "spe.cli.main", "db", "upgrade"],
                                env=env, capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, result.stderr
    tables = set(inspect(create_engine(f"sqlite:///{tmp_path / 'spe.db'}")).get_table_names())
    assert {"runs", "run_tags", "task_logs", "audit_events", "alembic_version"} <= tables
