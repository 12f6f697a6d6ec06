"""Site profiles against the schema: the shipped ones, a new site from the template, and
schema errors that point at the exact key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from spe.domain.site_profile import merge, summary
from tests.site.kit import DELETE, SITES, check, load, mutated, pointers, profile, schema

SHIPPED = sorted(p.stem for p in SITES.glob("*.yaml"))


def test_the_kit_ships_two_sites_and_a_template() -> None:
    assert {"bielefeld", "berlin", "_template"} <= set(SHIPPED)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_validate(name: str) -> None:
    report = check(profile(name))
    assert report.errors == ()
    assert report.document is not None
    assert summary(report.document, len(report.warnings)).startswith("site ")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_example_value_is_marked_and_strict_mode_refuses_them(name: str) -> None:
    report = check(profile(name), strict=True)
    marked = profile(name)["site"]["unconfirmed"]
    assert pointers(report) == marked
    assert all("not yet confirmed" in p.message for p in report.errors)


def test_the_sites_differ_where_de_nbi_sites_differ() -> None:
    bielefeld, berlin = profile("bielefeld")["bibigrid"], profile("berlin")["bibigrid"]
    assert bielefeld["waitForServices"] == ["de.NBI_Bielefeld_environment.service"]
    assert berlin["localDNSlookup"] is True and bielefeld["localDNSlookup"] is False
    assert "gateway" in bielefeld and "gateway" not in berlin
    assert "subnet" in bielefeld and "network" in berlin
    volume_types = {v.get("type") for v in bielefeld["masterInstance"]["volumes"]}
    assert {"CEPH_HDD", "CEPH_NVME"} <= volume_types


def tuebingen_from_template() -> dict[str, Any]:
    """What an operator does for a new site: copy the template, fill it in, confirm it."""
    doc = profile("_template")
    for pointer, value in [
        ("/site/id", "tuebingen"), ("/site/name", "de.NBI Cloud Tübingen"),
        ("/site/availability_zone", "nova"), ("/bibigrid/subnet", DELETE),
        ("/bibigrid/network", "spe-tue-net"), ("/bibigrid/gateway", DELETE),
        ("/bibigrid/localDNSlookup", True),
        ("/bibigrid/masterInstance/type", "m1.xlarge"),
        ("/bibigrid/masterInstance/volumes/1/type", DELETE),
        ("/bibigrid/masterInstance/volumes/2/type", DELETE),
        ("/bibigrid/workerInstances/0/type", "m1.large"),
        ("/bibigrid/workerInstances/0/count", 8),
        ("/spe/ssh_ingress_cidr", "203.0.113.0/28"),
        ("/spe/security_groups/0/rules/0/remote_ip_prefix", "203.0.113.7/32"),
        ("/site/unconfirmed", []),
    ]:
        doc = mutated(doc, pointer, value)
    return doc


def test_a_new_site_written_from_the_template_validates_strictly() -> None:
    report = check(tuebingen_from_template(), strict=True)
    assert report.errors == ()
    assert report.document is not None
    assert report.document["bibigrid"]["network"] == "spe-tue-net"
    assert report.document["bibigrid"]["useMasterWithPublicIp"] is False  # from the base


def test_a_pointer_in_unconfirmed_must_name_a_value() -> None:
    doc = mutated(profile(), "/site/unconfirmed/0", "/bibigrid/nonsense")
    report = check(doc)
    assert pointers(report) == ["/site/unconfirmed/0"]


@pytest.mark.parametrize(("pointer", "value", "expected", "fragment"), [
    ("/bibigrid/localDNSLookup", True, "/bibigrid/localDNSLookup", "spells it localDNSlookup"),
    ("/bibigrid/availabilityZone", "nova", "/bibigrid/availabilityZone", "/site/availability_zone"),
    ("/bibigrid/proxy", "x", "/bibigrid/proxy", "unknown key"),
    ("/bibigrid/sshUser", DELETE, "/bibigrid/sshUser", "required"),
    ("/spe/shares/quarantine", DELETE, "/spe/shares/quarantine", "required"),
    ("/spe/shares/work/mode", 2770, "/spe/shares/work/mode", "not of type 'string'"),
    ("/bibigrid/masterInstance/image", "   ", "/bibigrid/masterInstance/image", "does not match"),
    ("/bibigrid/workerInstances/0/type", "", "/bibigrid/workerInstances/0/type", "does not match"),
    ("/bibigrid/workerInstances/0/count", "4", "/bibigrid/workerInstances/0/count", "type"),
    ("/bibigrid/gateway/portFunction", "30000", "/bibigrid/gateway/portFunction", "match"),
    ("/profile", 2, "/profile", "1 was expected"),
])
def test_schema_errors_point_at_the_key(pointer: str, value: Any, expected: str,
                                        fragment: str) -> None:
    report = check(mutated(profile(), pointer, value))
    assert expected in pointers(report), report.errors
    assert any(fragment in p.message for p in report.errors if p.pointer == expected)
    assert report.document is None  # rules run only on a schema-valid profile


def test_not_a_mapping() -> None:
    assert pointers(check(["a", "list"])) == [""]


def test_merge_mappings_key_by_key_and_replace_lists() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}


def test_the_base_configuration_uses_bibigrid_3_1_keys_only() -> None:
    props = schema()["$defs"]["bibigrid"]["properties"]
    base = load(SITES.parent / "bibigrid.yaml")
    assert isinstance(base, list) and len(base) == 1
    assert set(base[0]) <= set(props), set(base[0]) - set(props)
    assert json.dumps(base).count("${env:") == 2  # the two secrets, nothing literal
