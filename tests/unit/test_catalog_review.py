"""The catalog review rule checked by machine: approved workflows that read enclave data
never echo data values in messages (docs/catalog.md, "Review rules")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spe.adapters.catalog import verify_catalog
from spe.domain.catalog import parse_manifest
from spe.domain.catalog_review import message_problems, reads_enclave_data
from spe.domain.errors import InvalidRequest

ROOT = Path(__file__).resolve().parents[2]
PRELUDE = ("import csv, sys, logging, warnings\nsm = snakemake\nwanted = [sm.params.id, "
           "*list(sm.params.numeric)]\nrows = list(csv.reader(open(sm.input[0])))\n"
           "header = rows[0]\n")


@pytest.mark.parametrize("line", [
    'raise ValueError(f"header is {header}")',
    'raise ValueError("first row: %s" % (rows[0],))',
    'raise ValueError("bad: {}".format(header))',
    'raise ValueError("bad value " + rows[1][2])',
    "raise ValueError(header)",
    "print(rows[0])",
    'print(f"row {rows[0]}", file=sys.stderr)',
    'sys.stderr.write(f"{header}\\n")',
    'logging.error("header %s", header)',
    'warnings.warn(f"odd value {rows[3][1]}")',
    'for row in rows:\n    raise ValueError(f"bad row {row}")',
    'name = header[0]\nraise ValueError(f"bad column {name}")',
])
def test_messages_that_interpolate_values_read_from_the_data_are_reported(line: str) -> None:
    problems = message_problems(PRELUDE + line + "\n")
    assert problems, line
    assert "value read from the data" in str(problems[0])


@pytest.mark.parametrize("line", [
    'raise ValueError(f"the input lacks {len(header)} of the columns ({\', \'.join(wanted)})")',
    'raise ValueError(f"{sm.input[0]}: no rows left ({len(rows)} read)")',
    'raise ValueError("a constant message")',
    "raise",
    "raise KeyError",
    'print(f"read {len(rows)} rows", file=open(sm.log[0], "w"))',  # a file, not a stream
    'print(f"wrote {sm.output.clean}")',
    'raise ValueError(f"odd header {header}")  # review: no data',
])
def test_counts_parameters_paths_and_constants_may_appear_in_messages(line: str) -> None:
    assert message_problems(PRELUDE + line + "\n") == []


def test_the_rule_applies_to_workflows_that_read_enclave_data() -> None:
    assert reads_enclave_data({"properties": {"input": {"type": "string",
                                                        "x-spe-input": True}}})
    assert not reads_enclave_data({"properties": {"input": {"enum": ["a.tsv"]}}})


def test_catalog_verify_reports_a_workflow_that_echoes_its_input(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(ROOT / "workflows", root,
                    ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
    script = root / "tsv-summary/1.1.0/bundle/scripts/validate.py"
    script.write_text(script.read_text() + '\nraise ValueError(f"first row {rows[0]}")\n')
    problems = [str(p) for p in verify_catalog(root)]
    assert any("validate.py" in p and "rows[0]" in p for p in problems), problems
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "catalog", "verify",
                             "--path", str(root)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1 and "never echo data values" in result.stderr


def test_outputs_may_not_use_the_reserved_log_prefix() -> None:
    data = yaml.safe_load((ROOT / "workflows/tsv-summary/1.1.0/manifest.yaml").read_text())
    data["outputs"] = [*data["outputs"], "_logs/stderr.txt"]
    with pytest.raises(InvalidRequest) as err:
        parse_manifest(data)
    assert ("/outputs/3", "_logs/ is reserved for the engine's logs") in err.value.errors
