"""The import direction of docs/architecture.md, checked by import-linter's contracts in
pyproject.toml; and the run directory's layout named in one module only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# a job directory's entries spelled as literals: its files by name, a folder joined onto
# a path, a constant or a tuple naming a folder
JOB_PATHS = re.compile(
    r"""["'](params\.json|handle\.json|exit_status|cancel_requested|slurm_job_id|"""
    r"""\.start-lease|job\.(sh|argv|env)|logs/[^"']*)["']"""
    r"""|/\s*["'](workflow|inputs|work|logs|tmp)["']"""
    r"""|=\s*["'](workflow|inputs|work|logs|tmp)["']\s*$"""
    r"""|\(["'](logs|tmp|work)["'],""")


def test_every_contract_is_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(contracts)} kept, 0 broken" in result.stdout
    for contract in contracts:
        assert f"{contract['name']} KEPT" in result.stdout


def test_the_job_directory_layout_is_named_in_one_module() -> None:
    spelled = []
    for path in sorted((ROOT / "spe").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "spe/domain/jobdir.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if JOB_PATHS.search(line.split("#", 1)[0]):
                spelled.append(f"{rel}:{number}: {line.strip()}")
    assert not spelled, "\n".join(spelled)
