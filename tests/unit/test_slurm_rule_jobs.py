"""Where a run's rules go on SLURM, and how often the engine asks about them: the site
settings (SPE_SLURM_RULE_JOBS, SPE_SLURM_STATUS_INIT_SECONDS) and a catalog entry's
``rule_jobs`` turned into the engine's argv (issue 15, goal 6; docs/slurm.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from spe.adapters.catalog import load_catalog
from spe.adapters.engines.nextflow import NextflowEngine
from spe.adapters.engines.snakemake import SnakemakeEngine
from spe.config import Settings
from spe.domain.catalog import WorkflowEntry, parse_manifest
from spe.domain.errors import InvalidRequest
from spe.domain.policy_file import parse_policy
from spe.domain.ports import LOCAL, EngineTarget
from spe.execution_wiring import slurm_executor

ROOT = Path(__file__).resolve().parents[2]
POLICY = parse_policy({"trusted_authorities": ["dev.invalid"], "projects": [
    {"id": "p", "entitlements": ["urn:geant:x:group:p"], "posix_group": "g-p",
     "slurm_account": "acct_p"}]})
RESOURCES = {"cpus": 1, "memory_mb": 256, "time_minutes": 10}


def entry(rule_jobs: str = "") -> WorkflowEntry:
    cat, _ = load_catalog(ROOT / "workflows")
    return dataclasses.replace(cat.resolve("tsv-summary@1.1.0"), rule_jobs=rule_jobs)


def target(tmp_path: Path, **settings: object) -> EngineTarget:
    chosen = Settings(home=tmp_path / "home", catalog_dir=ROOT / "workflows",
                      executor="slurm", **settings)  # type: ignore[arg-type]
    return slurm_executor(chosen, POLICY).engine_target(None, RESOURCES)


def snakemake_argv(tmp_path: Path, wanted: WorkflowEntry, where: EngineTarget) -> list[str]:
    return SnakemakeEngine().argv(wanted, tmp_path / "bundle", tmp_path / "params.json",
                                  tmp_path / "run", {"cores": 1}, target=where)


def after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_by_default_every_rule_is_a_slurm_job_checked_every_second_after_one_ends(
        tmp_path: Path) -> None:
    argv = snakemake_argv(tmp_path, entry(), target(tmp_path))
    assert after(argv, "--executor") == "slurm"
    assert after(argv, "--slurm-init-seconds-before-status-checks") == "1"
    assert after(argv, "--slurm-status-command") == "squeue"


def test_a_busy_site_sets_the_status_check_wait(tmp_path: Path) -> None:
    argv = snakemake_argv(tmp_path, entry(), target(tmp_path, slurm_status_init_seconds=15))
    assert after(argv, "--slurm-init-seconds-before-status-checks") == "15"


@pytest.mark.parametrize("bad", [0, -1, 601])
def test_a_status_check_wait_out_of_range_is_refused(tmp_path: Path, bad: int) -> None:
    with pytest.raises(ValidationError):
        target(tmp_path, slurm_status_init_seconds=bad)


def test_in_head_job_runs_the_rules_inside_the_head_job(tmp_path: Path) -> None:
    argv = snakemake_argv(tmp_path, entry(), target(tmp_path, slurm_rule_jobs="in_head_job"))
    assert "--executor" not in argv
    assert not [a for a in argv if a.startswith("--slurm")]
    assert after(argv, "--cores") == "1"  # within the head job's CPUs (job_resources)


def test_the_catalog_entry_wins_over_the_site_default(tmp_path: Path) -> None:
    head = snakemake_argv(tmp_path, entry("in_head_job"), target(tmp_path))
    assert "--executor" not in head
    cluster = snakemake_argv(tmp_path, entry("cluster"),
                             target(tmp_path, slurm_rule_jobs="in_head_job"))
    assert after(cluster, "--executor") == "slurm"


def test_rule_jobs_mean_nothing_on_the_local_executor(tmp_path: Path) -> None:
    assert not LOCAL.rule_jobs_on_cluster("cluster")
    assert "--executor" not in snakemake_argv(tmp_path, entry("cluster"), LOCAL)


def test_nextflow_keeps_its_processes_in_the_head_job_when_asked(tmp_path: Path) -> None:
    nf_entry = dataclasses.replace(entry("in_head_job"), engine="nextflow",
                                   workflow_type="NFL", entrypoint="main.nf")
    (tmp_path / "run").mkdir()
    engine = NextflowEngine()
    engine.argv(nf_entry, tmp_path / "bundle", tmp_path / "params.json", tmp_path / "run",
                {}, target=target(tmp_path))
    assert "executor = 'slurm'" not in (tmp_path / "run" / "spe.config").read_text()
    engine.argv(dataclasses.replace(nf_entry, rule_jobs=""), tmp_path / "bundle",
                tmp_path / "params.json", tmp_path / "run", {}, target=target(tmp_path))
    assert "process.executor = 'slurm'" in (tmp_path / "run" / "spe.config").read_text()


def test_a_manifest_names_where_its_rules_go_or_is_refused() -> None:
    manifest = (ROOT / "workflows/tsv-summary/1.1.0/manifest.yaml").read_text()
    data = yaml.safe_load(manifest)
    assert parse_manifest(data).rule_jobs == ""
    assert parse_manifest({**data, "rule_jobs": "in_head_job"}).rule_jobs == "in_head_job"
    with pytest.raises(InvalidRequest) as err:
        parse_manifest({**data, "rule_jobs": "everywhere"})
    assert [p for p, _ in err.value.errors] == ["/rule_jobs"]
