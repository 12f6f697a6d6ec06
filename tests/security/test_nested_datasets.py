"""Issue 11, finding 3: a dataset whose location lies inside another dataset's location.

With `outer` at `/data/cohorts` (project A) and `inner` at `/data/cohorts/restricted`
(project B), a project-A member named `dataset://outer/restricted/secret.tsv` (or the
absolute path) and the run read project B's file. The policy loader now refuses
overlapping locations, and the resolver authorises the most specific dataset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from spe.adapters.catalog import load_catalog
from spe.adapters.policy import dev_entitlement, load_policy
from spe.adapters.storage.factory import StoreFactory
from spe.cli.main import main
from spe.domain.catalog import WorkflowEntry
from spe.domain.data_refs import parse_refs
from spe.domain.errors import Forbidden, InvalidRequest
from spe.domain.identity import parse_entitlement
from spe.domain.models import AuditEvent, Principal
from spe.domain.policy import Dataset, Policy
from spe.domain.policy_file import parse_policy
from spe.services.access import Gate
from spe.services.data import DataService
from tests.helpers import ROOT

FIXTURE = ROOT / "tests/fixtures/policy/two-projects.yaml"
SCHEMA = {"type": "object", "properties": {"input": {"type": "string", "x-spe-input": True}}}


def _policy_with(outer: str, inner: str) -> dict[str, Any]:
    data = yaml.safe_load(FIXTURE.read_text())
    data["datasets"] = [{"id": "outer", "location": outer, "projects": ["proj-a"]},
                        {"id": "inner", "location": inner, "projects": ["proj-b"]}]
    return data


@pytest.mark.parametrize(("outer", "inner"), [
    ("/data/cohorts", "/data/cohorts/restricted"),
    ("/data/cohorts/", "/data/cohorts/restricted/"),
    ("/data/cohorts/restricted", "/data/cohorts"),          # inner listed first
    ("/data/cohorts", "/data/cohorts"),                     # the same place twice
    ("s3://bucket/cohorts/", "s3://bucket/cohorts/restricted/"),
    ("s3://bucket", "s3://bucket/restricted"),              # a whole bucket
])
def test_nested_dataset_location_is_refused_by_the_policy_loader(outer: str,
                                                                  inner: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_policy(_policy_with(outer, inner))
    problems = dict(caught.value.errors)
    assert "/datasets/1/location" in problems, problems
    message = problems["/datasets/1/location"]
    assert "/datasets/0" in message and "'outer'" in message, message


def test_nested_dataset_location_is_refused_by_spe_policy_check(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(_policy_with("/data/cohorts", "/data/cohorts/restricted")))
    result = CliRunner().invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert "INVALID /datasets/1/location" in result.output and "/datasets/0" in result.output


def test_nested_dataset_location_behind_a_symlink_is_refused_by_the_policy_loader(
        tmp_path: Path) -> None:
    (tmp_path / "cohorts/restricted").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "cohorts/restricted")
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(_policy_with(str(tmp_path / "cohorts"),
                                                str(tmp_path / "alias"))))
    with pytest.raises(InvalidRequest) as caught:
        load_policy(path)
    assert "/datasets/0" in dict(caught.value.errors)["/datasets/1/location"]


@pytest.mark.parametrize(("outer", "inner"), [
    ("/data/cohorts", "/data/cohorts2"),                    # a sibling sharing a prefix
    ("s3://bucket/cohorts/", "s3://bucket/cohorts-restricted/"),
    ("s3://bucket/cohorts/", "s3://other/cohorts/"),
    ("/data/cohorts", "s3://data/cohorts/restricted"),
])
def test_datasets_side_by_side_are_accepted(outer: str, inner: str) -> None:
    assert set(parse_policy(_policy_with(outer, inner)).datasets) == {"outer", "inner"}


@pytest.mark.parametrize("location", ["/data/cohorts/../secret", "/data/./cohorts",
                                      "/data//cohorts", "s3://bucket/a/../b/"])
def test_a_location_with_dot_segments_is_refused(location: str) -> None:
    data = _policy_with("/data/elsewhere", "/data/other")
    data["datasets"][0]["location"] = location
    with pytest.raises(InvalidRequest) as caught:
        parse_policy(data)
    assert "/datasets/0/location" in dict(caught.value.errors)


# The resolver on its own: a policy built in code (the loader would refuse it) still
# authorises the most specific dataset.

def _nested(root: Path) -> Policy:
    base = parse_policy(yaml.safe_load(FIXTURE.read_text()))
    (root / "cohorts/restricted").mkdir(parents=True)
    (root / "cohorts/open.tsv").write_text("id\n1\n")
    (root / "cohorts/restricted/secret.tsv").write_text("id\n2\n")
    return replace(base, datasets={
        "outer": Dataset(id="outer", location=str(root / "cohorts"), projects=("proj-a",)),
        "inner": Dataset(id="inner", location=str(root / "cohorts/restricted"),
                         projects=("proj-b",)),
    })


class _Audit:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        self.events.append(event)


def _member(*groups: str) -> Principal:
    ents = tuple(e for g in groups if (e := parse_entitlement(dev_entitlement(g))) is not None)
    return Principal(sub="dev|alice", username="alice", entitlements=ents)


def _entry() -> WorkflowEntry:
    entry = load_catalog(ROOT / "workflows")[0].entries()[0]
    return replace(entry, params_schema=SCHEMA)


@pytest.mark.parametrize("ref", ["dataset://outer/restricted/secret.tsv",
                                 "{root}/cohorts/restricted/secret.tsv"])
def test_path_into_a_nested_dataset_is_authorised_against_the_inner_dataset(
        tmp_path: Path, ref: str) -> None:
    policy = _nested(tmp_path)
    raw = ref.format(root=tmp_path)
    (found,) = parse_refs(SCHEMA, {"input": raw}, policy.datasets)
    assert (found.dataset, found.path) == ("inner", "secret.tsv")

    audit = _Audit()
    data = DataService(gate=Gate(policy), stores=StoreFactory(), audit=audit,  # type: ignore[arg-type]
                       quarantine_location=lambda p: str(tmp_path / "q" / p),
                       files=None)  # type: ignore[arg-type]
    with pytest.raises(Forbidden) as caught:
        data.authorize(_member("spe:proj-a"), _entry(), {"input": raw}, "proj-a")
    assert "inner" in str(caught.value)
    assert [(e.action, e.target) for e in audit.events] == [("data.denied", "inner")]
    # the outer dataset's own files stay usable, and the inner one by its project
    data.authorize(_member("spe:proj-a"), _entry(),
                   {"input": "dataset://outer/open.tsv"}, "proj-a")
    (allowed,) = data.authorize(_member("spe:proj-b"), _entry(), {"input": raw}, "proj-b")
    assert allowed.dataset == "inner"
