"""Pure rules of cluster execution: job resources clamped to the site's limits, whom a job
runs as, the engines' SLURM arguments, and the modes of a shared run directory."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from spe.adapters.engines.nextflow import slurm_config
from spe.adapters.engines.snakemake import slurm_arguments
from spe.adapters.executors.workdir import account_problem, share_with_group
from spe.domain.errors import Forbidden, InvalidRequest
from spe.domain.policy_file import parse_policy
from spe.domain.ports import EngineTarget, JobAccount
from spe.domain.resources import SiteLimits, job_resources, rule_job_resources

LIMITS = SiteLimits(cpus=4, memory_mb=2048, time_minutes=30)


def test_manifest_resources_pass_when_within_the_limits() -> None:
    assert job_resources({"cpus": 2, "memory_mb": 1024, "time_minutes": 10}, {}, LIMITS) == \
        {"cpus": 2, "memory_mb": 1024, "time_minutes": 10}


def test_resources_are_clamped_to_the_site_limits() -> None:
    got = job_resources({"cpus": 64, "memory_mb": 10**6, "time_minutes": 10**4}, {}, LIMITS)
    assert got == {"cpus": 4, "memory_mb": 2048, "time_minutes": 30}


def test_cores_option_raises_cpus_but_never_past_the_limit() -> None:
    assert job_resources({"cpus": 1}, {"cores": 3}, LIMITS)["cpus"] == 3
    assert job_resources({"cpus": 1}, {"cores": 99}, LIMITS)["cpus"] == 4
    assert job_resources({"cpus": 2}, {"max_cpus": True}, LIMITS)["cpus"] == 2  # not an int


def test_missing_or_silly_values_get_defaults_and_at_least_one() -> None:
    got = job_resources({"cpus": 0, "memory_mb": -5}, {}, LIMITS)
    assert got == {"cpus": 1, "memory_mb": 1, "time_minutes": 30}
    assert rule_job_resources(got) == {"mem_mb": 1, "runtime": 30}


POLICY = {
    "trusted_authorities": ["dev.invalid"],
    "posix_accounts": {"sub-123": "u-alice", "bob": "u-bob"},
    "projects": [
        {"id": "p", "entitlements": ["urn:geant:x:group:p"], "posix_group": "g-p",
         "slurm_account": "acct_p"},
        {"id": "nogroup", "entitlements": ["urn:geant:x:group:q"]},
    ],
}


def test_job_account_by_sub_then_user_name_then_the_name_itself() -> None:
    policy = parse_policy(POLICY)
    assert policy.job_account("sub-123", "alice", "p") == JobAccount("u-alice", "g-p", "acct_p")
    assert policy.job_account("sub-9", "bob", "p").user == "u-bob"
    assert policy.job_account("sub-8", "carol", "p").user == "carol"


@pytest.mark.parametrize(("name", "project"), [("Carol Smith", "p"), ("root$", "p"),
                                               ("ok", "nogroup"), ("ok", "missing")])
def test_job_account_denies_by_default(name: str, project: str) -> None:
    with pytest.raises(Forbidden):
        parse_policy(POLICY).job_account("sub-x", name, project)


def test_policy_file_rejects_bad_posix_names_with_pointers() -> None:
    bad = {**POLICY, "posix_accounts": {"a/b": "Bad Name"},
           "projects": [{**POLICY["projects"][0], "posix_group": "no spaces"}]}
    with pytest.raises(InvalidRequest) as err:
        parse_policy(bad)
    pointers = [p for p, _ in err.value.errors]
    assert "/posix_accounts/a~1b" in pointers
    assert "/projects/0/posix_group" in pointers


def test_snakemake_sends_rules_to_slurm_with_the_project_account() -> None:
    argv = slurm_arguments(EngineTarget("slurm", "acct", "main", 4, {"mem_mb": 512,
                                                                    "runtime": 10}))
    assert argv[:4] == ["--executor", "slurm", "--jobs", "4"]
    assert "--slurm-status-command" in argv and "squeue" in argv
    tail = argv[argv.index("--default-resources") + 1:]
    assert tail == ["mem_mb=512", "runtime=10", "slurm_account=acct", "slurm_partition=main"]
    assert "--slurm-no-account" in slurm_arguments(EngineTarget("slurm"))


def test_nextflow_config_quotes_values_from_the_policy() -> None:
    text = slurm_config(EngineTarget("slurm", "a'b", "", 2, {}))
    assert "process.executor = 'slurm'" in text
    assert "process.clusterOptions = '--account=a\\'b'" in text
    assert "process.queue" not in text


def test_shared_run_directory_modes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "workflow" / "scripts").mkdir(parents=True)
    (run / "workflow" / "scripts" / "x.py").write_text("print()")
    (run / "workflow" / "tool").write_text("#!/bin/sh\n")
    (run / "workflow" / "tool").chmod(0o755)
    group = grp.getgrgid(os.getgid()).gr_name
    share_with_group(run, group)
    mode = {p.relative_to(run).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in [run, *run.rglob("*")]}
    assert mode["."] == 0o3770
    assert mode["logs"] == mode["tmp"] == mode["work"] == 0o2770
    assert mode["workflow"] == mode["workflow/scripts"] == 0o2750
    assert mode["workflow/scripts/x.py"] == 0o640
    assert mode["workflow/tool"] == 0o750


def test_the_runs_folder_lets_researchers_pass_but_not_list(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    runs.chmod(0o700)  # as the service's umask of 077 makes it
    share_with_group(runs / "r1", grp.getgrgid(os.getgid()).gr_name)
    assert stat.S_IMODE(runs.stat().st_mode) == 0o711


def test_account_problems_are_named() -> None:
    assert "no POSIX account" in (account_problem("no-such-user-xyz", "root") or "")
    assert "no POSIX group" in (account_problem("root", "no-such-group-xyz") or "")
    assert account_problem("root", grp.getgrgid(0).gr_name) is None
