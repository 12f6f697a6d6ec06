"""The rules the schema cannot express: one failing case per rule, each with the exact
JSON pointer of the offending value."""

from __future__ import annotations

from typing import Any

import pytest

from spe.domain.site_rules import RULES
from tests.site.kit import DELETE, base_master, check, mutated, pointers, profile

WORKER_0 = "/bibigrid/workerInstances/0"
VOLUME_0 = "/bibigrid/masterInstance/volumes/0"
RULE_0 = "/spe/security_groups/0/rules/0"

# (name, [(pointer, value)...] applied to the Bielefeld profile, expected pointer, fragment)
CASES: list[tuple[str, list[tuple[str, Any]], str, str]] = [
    ("public ip", [("/bibigrid/useMasterWithPublicIp", True)],
     "/bibigrid/useMasterWithPublicIp", "must be False"),
    ("floating ip", [("/bibigrid/floatingIpId", "abc")], "/bibigrid/floatingIpId", "floating"),
    ("subnet and network", [("/bibigrid/network", "net")], "/bibigrid/network", "not both"),
    ("neither subnet nor network", [("/bibigrid/subnet", DELETE)], "/bibigrid/subnet",
     "required"),
    ("ssh from anywhere", [("/spe/ssh_ingress_cidr", "0.0.0.0/0")], "/spe/ssh_ingress_cidr",
     "whole internet"),
    ("port open to ipv6 world", [(f"{RULE_0}/remote_ip_prefix", "::/0")],
     f"{RULE_0}/remote_ip_prefix", "whole internet"),
    ("not a network", [(f"{RULE_0}/remote_ip_prefix", "300.1.1.1/32")],
     f"{RULE_0}/remote_ip_prefix", "not an IP network"),
    ("ingress without remote", [(f"{RULE_0}/remote_ip_prefix", DELETE)], RULE_0, "0.0.0.0/0"),
    ("undescribed group", [("/bibigrid/securityGroups/1", "default-open")],
     "/bibigrid/securityGroups/1", "not described"),
    ("undescribed group on a worker", [(f"{WORKER_0}/securityGroups", ["ssh-world"])],
     f"{WORKER_0}/securityGroups/0", "not described"),
    ("literal db password", [("/bibigrid/slurmConf/db_password", "hunter2")],
     "/bibigrid/slurmConf/db_password", "literal value is refused"),
    ("literal munge key", [("/bibigrid/slurmConf/munge_key", "k" * 40)],
     "/bibigrid/slurmConf/munge_key", "literal value is refused"),
    ("malformed reference", [("/bibigrid/slurmConf/munge_key", "${vault:x}")],
     "/bibigrid/slurmConf/munge_key", "literal value is refused"),
    ("nfs off", [("/bibigrid/nfs", False)], "/bibigrid/nfs", "must be True"),
    ("quarantine not exported", [("/bibigrid/nfsShares", ["/vol/spe/data", "/vol/spe/work"])],
     "/spe/shares/quarantine/path", "not listed in /bibigrid/nfsShares"),
    ("quarantine inside work", [
        ("/spe/shares/quarantine/path", "/vol/spe/work/q"),
        ("/bibigrid/nfsShares", ["/vol/spe/data", "/vol/spe/work", "/vol/spe/work/q"])],
     "/spe/shares/quarantine/path", "inside (or equal) the work share"),
    ("work project dirs 0777", [("/spe/shares/work/project_mode", "0777")],
     "/spe/shares/work/project_mode", "world-writable"),
    ("work project dirs 2775", [("/spe/shares/work/project_mode", "2775")],
     "/spe/shares/work/project_mode", 'must be "2770"'),
    ("work root 0777 (BiBiGrid's default)", [("/spe/shares/work/mode", "0777")],
     "/spe/shares/work/mode", "world-writable"),
    ("quarantine readable by others", [("/spe/shares/quarantine/mode", "2755")],
     "/spe/shares/quarantine/mode", 'must be "2750"'),
    ("quarantine owned by root", [("/spe/shares/quarantine/owner", "root")],
     "/spe/shares/quarantine/owner", "only the service"),
    ("quarantine group of researchers", [("/spe/shares/quarantine/group", "spe-researchers")],
     "/spe/shares/quarantine/group", "only the service"),
    ("data writable", [("/spe/shares/data/readonly", False)], "/spe/shares/data/readonly",
     "read-only"),
    ("data group-writable", [("/spe/shares/data/project_mode", "2770")],
     "/spe/shares/data/project_mode", "writable by group"),
    ("no on-demand workers", [(f"{WORKER_0}/onDemand", False),
                              ("/bibigrid/workerInstances/1/onDemand", DELETE)],
     "/bibigrid/workerInstances", "onDemand: True"),
    ("credentials withheld", [("/bibigrid/dontUploadCredentials", True)],
     "/bibigrid/dontUploadCredentials", "prevents on-demand"),
    ("image regex broken", [(f"{WORKER_0}/image", "Ubuntu (22.04")], f"{WORKER_0}/image",
     "not a valid regular expression"),
    ("two volume lifetimes", [(f"{VOLUME_0}/permanent", True)], VOLUME_0, "at most one"),
    ("existing volume without name", [(f"{VOLUME_0}/name", DELETE)], f"{VOLUME_0}/name",
     "needs the volume's name"),
    ("role missing", [("/bibigrid/userRoles", [])], "/bibigrid/userRoles", "spe_cluster"),
    ("role on master only", [("/bibigrid/userRoles", [
        {"hosts": ["master"], "roles": [{"name": "spe_cluster"}]}])],
     "/bibigrid/userRoles", "missing: ['workers']"),
    ("jobs on the master", [("/bibigrid/useMasterAsCompute", True)],
     "/bibigrid/useMasterAsCompute", "must be False"),
    ("web ide", [("/bibigrid/ide", True)], "/bibigrid/ide", "shell into the enclave"),
    ("no slurm", [("/bibigrid/slurm", False)], "/bibigrid/slurm", "SLURM"),
    ("gid twice", [("/spe/project_gids/spe-other", 30001)], "/spe/project_gids/spe-other",
     "used twice"),
    ("gid of the service", [("/spe/project_gids/spe-demo", 2001)],
     "/spe/project_gids/spe-demo", "used twice"),
]


@pytest.mark.parametrize(("changes", "expected", "fragment"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_refuses(changes: list[tuple[str, Any]], expected: str, fragment: str) -> None:
    doc = profile()
    for pointer, value in changes:
        doc = mutated(doc, pointer, value)
    report = check(doc)
    assert expected in pointers(report), report.errors
    assert any(fragment in p.message for p in report.errors if p.pointer == expected), \
        report.errors


def test_every_rule_has_a_failing_case() -> None:
    assert len(RULES) == 13
    assert len(CASES) >= 2 * len(RULES)


def test_a_literal_secret_is_never_echoed() -> None:
    report = check(mutated(profile(), "/bibigrid/slurmConf/db_password", "hunter2"))
    assert all("hunter2" not in p.message for p in report.errors)


def test_a_bad_value_from_the_base_says_so() -> None:
    base = {**base_master(), "useMasterWithPublicIp": True}
    report = check(profile(), base=base)
    [problem] = [p for p in report.errors if p.pointer == "/bibigrid/useMasterWithPublicIp"]
    assert problem.message.endswith("(value from the base bibigrid.yaml)")


def test_missing_secrets_are_required() -> None:
    base = {k: v for k, v in base_master().items() if k != "slurmConf"}
    report = check(profile(), base=base)
    assert {"/bibigrid/slurmConf/db_password", "/bibigrid/slurmConf/munge_key"} <= set(
        pointers(report))
