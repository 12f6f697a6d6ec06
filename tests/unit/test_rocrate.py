"""The Five Safes RO-Crate of a release: what it says, and that it holds together."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from spe.adapters.rocrate_writer import RoCrateWriter
from spe.domain.airlock_checks import AirlockSettings, run_checks
from spe.domain.file_types import CandidateFile
from spe.domain.rocrate import (
    COMPLETED,
    CONTEXT,
    DESCRIPTOR,
    FAILED,
    FIVE_SAFES,
    RO_CRATE,
    release_crate,
    validate_crate,
)

DIGEST = "sha256:" + "ab" * 32
FILES: list[dict[str, Any]] = [{"path": "results/summary.csv", "size": 120, "sha256": "1" * 64},
         {"path": "results/plot one.png", "size": 4096, "sha256": "2" * 64}]
FINDINGS: list[dict[str, Any]] = [
    {"check": "path", "path": "results/summary.csv", "severity": "pass", "message": "ok"},
    {"check": "path", "path": "results/plot one.png", "severity": "pass", "message": "ok"},
    {"check": "total_size", "path": "", "severity": "pass", "message": "4216 bytes"},
    {"check": "small_counts", "path": "results/summary.csv", "severity": "soft",
     "message": "1 count(s) from 1 to 9 in count column(s) n",
     "details": {"cells": [["row 2", "col n", 4]]}},
]
VOTES: list[dict[str, Any]] = [
    {"reviewer": "rita", "path": "results/summary.csv", "decision": "approve",
     "reason": "the 4 is a synthetic row", "at": "2025-01-02T10:00:00Z"},
    {"reviewer": "rita", "path": "results/plot one.png", "decision": "approve", "reason": "",
     "at": "2025-01-02T10:01:00Z"},
    {"reviewer": "ravi", "path": "results/summary.csv", "decision": "request_changes",
     "reason": "round the counts", "at": "2025-01-02T11:00:00Z"},
]


def crate(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "request_id": "rr-1", "run_id": "run-9", "workflow_id": "tsv-summary",
        "workflow_version": "1.0.0", "bundle_digest": DIGEST,
        "datasets": ["demo-cohort", "ref genome"], "requester": "alice", "project": "proj-a",
        "justification": "figures for the paper", "files": FILES, "findings": FINDINGS,
        "votes": VOTES, "decided_at": "2025-01-02T12:00:00Z",
        "released_at": "2025-01-02T12:05:00Z"}
    return release_crate(RoCrateWriter(), **{**args, **overrides})


def entities(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["@id"]: e for e in c["@graph"]}


def of_type(c: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [e for e in c["@graph"] if type_ in ([e["@type"]] if isinstance(e["@type"], str)
                                                 else e["@type"])]


def test_the_descriptor_and_the_root_dataset() -> None:
    c = crate()
    graph = entities(c)
    assert c["@context"] == [CONTEXT, {"sha256": "http://schema.org/sha256"}]
    assert graph[DESCRIPTOR]["about"] == {"@id": "./"}
    assert graph[DESCRIPTOR]["conformsTo"] == [{"@id": RO_CRATE}, {"@id": FIVE_SAFES}]
    root = graph["./"]
    assert root["@type"] == "Dataset"
    assert root["hasPart"] == [{"@id": "results/summary.csv"},
                               {"@id": "results/plot%20one.png"}]
    assert root["mainEntity"] == {"@id": "#workflow-tsv-summary@1.0.0"}
    assert "rr-1" in root["name"] and "figures for the paper" in root["description"]
    assert root["datePublished"] == "2025-01-02T12:05:00Z"


def test_files_carry_size_digest_and_media_type() -> None:
    graph = entities(crate())
    csv_file, png = graph["results/summary.csv"], graph["results/plot%20one.png"]
    assert csv_file["@type"] == "File" and csv_file["sha256"] == "1" * 64
    assert (csv_file["contentSize"], csv_file["encodingFormat"]) == ("120", "text/csv")
    assert (png["name"], png["encodingFormat"]) == ("results/plot one.png", "image/png")


def test_the_workflow_is_pinned_by_its_bundle_digest_and_the_run_used_the_datasets() -> None:
    c = crate()
    graph = entities(c)
    workflow = graph["#workflow-tsv-summary@1.0.0"]
    assert "ComputationalWorkflow" in workflow["@type"]
    assert workflow["identifier"] == DIGEST
    [run] = of_type(c, "CreateAction")
    assert run["@id"] == "#run-run-9"
    assert run["instrument"] == {"@id": workflow["@id"]}
    assert run["object"] == [{"@id": "#dataset-demo-cohort"}, {"@id": "#dataset-ref%20genome"}]
    assert graph["#dataset-ref%20genome"]["@type"] == "Dataset"
    assert run["result"] == graph["./"]["hasPart"]
    assert graph[run["agent"]["@id"]] == {"@id": "#person-alice", "@type": "Person",
                                          "name": "alice", "memberOf": {"@id": "#project-proj-a"}}


def test_one_assess_action_per_automatic_check() -> None:
    c = crate()
    checks = {e["name"].split(":")[0]: e for e in of_type(c, "AssessAction")
              if e["additionalType"] == "automated check"}
    assert set(checks) == {"Automated check path", "Automated check total_size",
                           "Automated check small_counts"}
    small = checks["Automated check small_counts"]
    assert small["actionStatus"] == COMPLETED
    assert small["description"] == FINDINGS[3]["message"]
    assert small["object"] == [{"@id": "results/summary.csv"}]
    assert "row 2" not in json.dumps(c)  # details (cell values) stay in the enclave
    assert len(checks["Automated check total_size"]["object"]) == 2


def test_a_failed_check_is_a_failed_action() -> None:
    hard = {"check": "size", "path": "results/summary.csv", "severity": "hard",
            "message": "too big"}
    [size] = [e for e in of_type(crate(findings=[hard]), "AssessAction")
              if e["additionalType"] == "automated check"]
    assert (size["actionStatus"], size["description"]) == (FAILED, "too big")


def test_one_assess_action_per_vote_with_the_decision() -> None:
    c = crate()
    graph = entities(c)
    reviews = [e for e in of_type(c, "AssessAction")
               if e["additionalType"] == "disclosure review"]
    assert len(reviews) == len(VOTES)
    assert [(graph[r["agent"]["@id"]]["name"], r["object"]["@id"],
             graph[r["result"]["@id"]]["name"], r["description"], r["endTime"])
            for r in reviews] == [
        ("rita", "results/summary.csv", "approve", "the 4 is a synthetic row",
         "2025-01-02T10:00:00Z"),
        ("rita", "results/plot%20one.png", "approve", "", "2025-01-02T10:01:00Z"),
        ("ravi", "results/summary.csv", "request_changes", "round the counts",
         "2025-01-02T11:00:00Z")]
    assert all(r["actionStatus"] == COMPLETED for r in reviews)


def test_reviewers_are_people_and_times_may_be_datetimes() -> None:
    at = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
    c = crate(votes=[{**VOTES[0], "at": at}])
    graph = entities(c)
    assert graph["#person-rita"] == {"@id": "#person-rita", "@type": "Person", "name": "rita"}
    [review] = [e for e in of_type(c, "AssessAction")
                if e["additionalType"] == "disclosure review"]
    assert review["endTime"] == "2025-01-02T10:00:00+00:00"


def test_the_release_is_an_update_action() -> None:
    [release] = of_type(crate(), "UpdateAction")
    assert release["name"] == "release"
    assert (release["startTime"], release["endTime"]) == ("2025-01-02T12:00:00Z",
                                                          "2025-01-02T12:05:00Z")
    assert len(release["object"]) == 2


def test_the_crate_is_valid_and_serialisable() -> None:
    c = crate()
    assert validate_crate(c) == []
    assert json.loads(json.dumps(c)) == c
    ids = [e["@id"] for e in c["@graph"]]
    assert len(ids) == len(set(ids))


def test_a_crate_from_real_findings_is_valid() -> None:
    head = b"group,n\na,12\n"
    files = [CandidateFile("results/summary.csv", len(head), head,
                           text_rows=lambda: iter([["group", "n"], ["a", "12"]]))]
    findings = [f.as_dict() for f in run_checks(files, AirlockSettings())]
    assert validate_crate(crate(files=FILES[:1], findings=findings, votes=VOTES[:1])) == []


def test_validation_finds_a_dangling_reference() -> None:
    c = crate()
    entities(c)["#run-run-9"]["object"].append({"@id": "#dataset-nowhere"})
    assert validate_crate(c) == ["#run-run-9: dangling reference to #dataset-nowhere"]


def test_validation_refuses_what_is_not_an_ro_crate() -> None:
    assert validate_crate({"@context": "https://schema.org", "@graph": []})
    assert validate_crate({**crate(), "@graph": {}})


def test_validation_finds_a_missing_descriptor_and_a_file_without_digest() -> None:
    c = crate()
    c["@graph"] = [e for e in c["@graph"] if e["@id"] != DESCRIPTOR]
    del entities(c)["results/summary.csv"]["sha256"]
    assert validate_crate(c) == [f"missing metadata descriptor {DESCRIPTOR} about ./",
                                 "results/summary.csv: a File without a sha256"]


def test_votes_and_findings_about_files_outside_the_release_are_left_out() -> None:
    c = crate(files=FILES[:1])
    assert len([e for e in of_type(c, "AssessAction")
                if e["additionalType"] == "disclosure review"]) == 2
    assert "plot one" not in json.dumps(c)
    assert validate_crate(c) == []


@pytest.mark.parametrize("overrides", [
    {"votes": [{**VOTES[0], "decision": "maybe"}]},
    {"files": [{**FILES[0], "sha256": "XYZ"}]},
    {"files": [{**FILES[0], "size": -1}]},
    {"files": [FILES[0], FILES[0]]},
    {"files": [{**FILES[0], "path": "ro-crate-metadata.json"}]}])
def test_malformed_input_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        crate(**overrides)
