"""The policy file, what it grants, and the permission table."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from spe.adapters.policy import dev_entitlement, load_policy
from spe.domain.errors import InvalidRequest
from spe.domain.identity import Visa, parse_entitlement
from spe.domain.models import Principal
from spe.domain.permissions import PERMISSIONS, Resource, allowed, permission
from spe.domain.policy_file import parse_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "tests/fixtures/policy/two-projects.yaml"
NOW = time.time()


def who(*groups: str, visas: tuple[Visa, ...] = (), authority: str = "dev.invalid"
        ) -> Principal:
    ents = tuple(e for g in groups
                 if (e := parse_entitlement(dev_entitlement(g).replace(
                     "#dev.invalid", f"#{authority}"))) is not None)
    return Principal(sub="dev|x", username="x", entitlements=ents, visas=visas)


def grant(value: str = "https://ega.example.org/datasets/EGAD0001",
          source: str = "https://dac.example.org", by: str = "dac",
          valid_until: float = NOW + 3600) -> Visa:
    return Visa(type="ControlledAccessGrants", value=value, source=source, by=by,
                asserted=int(NOW) - 10, valid_until=int(valid_until), issuer="https://v/")


def test_the_fixture_policy_parses() -> None:
    policy = load_policy(POLICY_FILE)
    assert set(policy.projects) == {"proj-a", "proj-b"}
    assert policy.projects["proj-b"].visibility == "project"
    assert policy.trusted_authorities == frozenset({"dev.invalid"})


def test_every_problem_is_reported_with_its_pointer() -> None:
    data = yaml.safe_load(POLICY_FILE.read_text())
    data["projects"][0]["visibility"] = "everyone"
    data["projects"][1]["colour"] = "blue"
    data["projects"].append({"id": "Bad Id", "entitlements": ["not-an-entitlement"]})
    data["roles"].append({"role": "admin", "project": "nope", "entitlement": "x"})
    data["datasets"].append({"id": "orphan", "location": "relative/path"})
    with pytest.raises(InvalidRequest) as err:
        parse_policy(data)
    pointers = {p for p, _ in err.value.errors}
    assert {"/projects/0/visibility", "/projects/1/colour", "/projects/2/id",
            "/projects/2/entitlements/0", "/roles/2/role", "/roles/2/project",
            "/roles/2/entitlement", "/datasets/2/location", "/datasets/2"} <= pointers


def test_policy_check_command_fails_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("projects: [{id: x}]\n")
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "policy", "check",
                             str(bad)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 1
    assert "/projects/0/entitlements" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "spe.cli.main", "policy", "check",
                         str(POLICY_FILE)], capture_output=True, text=True, timeout=60,
                        check=False)
    assert ok.returncode == 0, ok.stderr


def test_membership_comes_from_the_project_entitlement_whatever_its_role() -> None:
    policy = load_policy(POLICY_FILE)
    access = policy.access(who("spe:proj-a:role=reviewer"), NOW)
    assert access.projects == {"proj-a": frozenset({"researcher", "reviewer"})}
    assert policy.access(who("spe:proj-c"), NOW).projects == {}


def test_global_operator_role() -> None:
    access = load_policy(POLICY_FILE).access(who("spe:operators"), NOW)
    assert access.is_operator and access.projects == {}


def test_datasets_by_project_or_by_a_valid_visa() -> None:
    policy = load_policy(POLICY_FILE)
    assert policy.access(who("spe:proj-a"), NOW).datasets == ("cohort-a",)
    assert policy.access(who(visas=(grant(),)), NOW).datasets == ("ega-study",)
    for bad in (grant(by=""), grant(source="https://other-dac"), grant(value="x"),
                grant(valid_until=NOW - 1)):
        assert policy.access(who(visas=(bad,)), NOW).datasets == (), bad


def test_unknown_permission_names_fail_immediately() -> None:
    with pytest.raises(KeyError):
        permission("run.delete_everything")
    with pytest.raises(KeyError):
        allowed(load_policy(POLICY_FILE).access(who(), NOW), "nope", Resource())


def test_every_permission_is_granted_by_something_and_denied_by_default() -> None:
    policy = load_policy(POLICY_FILE)
    stranger = policy.access(who(), NOW)
    run = Resource(project="proj-a", owner_sub="dev|someone-else")
    for name, relations in PERMISSIONS.items():
        assert relations, name
        if name.startswith("run.") and name != "run.list":
            assert not allowed(stranger, name, run), name


def test_operators_read_run_metadata_but_never_logs() -> None:
    operator = load_policy(POLICY_FILE).access(who("spe:operators"), NOW)
    run = Resource(project="proj-a", owner_sub="dev|alice")
    assert allowed(operator, "run.read", run)
    assert not allowed(operator, "run.read_logs", run)


def test_the_owner_relation_needs_current_membership_of_the_project() -> None:
    data = yaml.safe_load(POLICY_FILE.read_text())
    data["roles"].append({"role": "reviewer", "project": "proj-a",
                          "entitlement": "urn:geant:dev.invalid:group:spe:panel:role=reviewer"})
    policy = parse_policy(data)
    mine = Resource(project="proj-a", owner_sub="dev|x")
    member = policy.access(who("spe:proj-a"), NOW)
    assert all(allowed(member, p, mine) for p in ("run.read", "run.read_logs",
                                                  "release.request", "release.download"))
    for ex in (policy.access(who(), NOW), policy.access(who("spe:proj-b"), NOW),
               policy.access(who("spe:panel:role=reviewer"), NOW)):  # a role, no membership
        for name in ("run.read_logs", "run.cancel", "run.purge", "release.request",
                     "release.download"):
            assert not allowed(ex, name, mine), name


def test_duplicate_dataset_ids_are_refused() -> None:
    data = yaml.safe_load(POLICY_FILE.read_text())
    data["datasets"].append(dict(data["datasets"][0]))
    with pytest.raises(InvalidRequest) as err:
        parse_policy(data)
    assert ("/datasets", "duplicate dataset id 'cohort-a'") in err.value.errors


def test_a_project_operator_lists_the_projects_runs() -> None:
    from spe.services.access import Gate

    data = yaml.safe_load(POLICY_FILE.read_text())
    data["roles"].append({"role": "operator", "project": "proj-a",
                          "entitlement": "urn:geant:dev.invalid:group:spe:proj-a:role=ops"})
    gate = Gate(parse_policy(data))
    visible = gate.visibility(who("spe:proj-a:role=ops"))
    assert visible.projects == ("proj-a",) and not visible.everything


def test_a_project_operator_never_reads_logs_though_its_entitlement_makes_it_a_member(
        ) -> None:
    data = yaml.safe_load(POLICY_FILE.read_text())
    data["roles"].append({"role": "operator", "project": "proj-b",
                          "entitlement": "urn:geant:dev.invalid:group:spe:proj-b:role=operator"})
    oscar = parse_policy(data).access(who("spe:proj-b:role=operator"), NOW)
    shared = Resource(project="proj-b", owner_sub="dev|bob", shared=True)
    assert "researcher" in oscar.projects["proj-b"]  # same group path: a member too
    assert allowed(oscar, "run.read", shared)
    assert not allowed(oscar, "run.read_logs", shared)
    own = Resource(project="proj-b", owner_sub="dev|x", shared=True)
    assert allowed(oscar, "run.read_logs", own)  # their own run


def test_logs_mode_defaults_to_airlock_and_takes_only_known_values() -> None:
    data = yaml.safe_load(POLICY_FILE.read_text())
    policy = parse_policy(data)
    assert {p.logs for p in policy.projects.values()} == {"airlock"}
    data["projects"][1]["logs"] = "direct"
    assert parse_policy(data).projects["proj-b"].logs == "direct"
    data["projects"][1]["logs"] = "yes"
    with pytest.raises(InvalidRequest) as err:
        parse_policy(data)
    assert any(p == "/projects/1/logs" for p, _ in err.value.errors)
