"""Finding and checking data references in workflow params."""

from __future__ import annotations

import pytest

from spe.domain.data_refs import input_values, parse_refs, set_pointer
from spe.domain.errors import InvalidRequest
from spe.domain.policy import Dataset

SCHEMA = {
    "type": "object",
    "properties": {
        "input": {"type": "string", "x-spe-input": True},
        "extra": {"type": "array", "items": {"type": "string", "x-spe-input": True}},
        "nested": {"type": "object", "properties": {
            "ref": {"type": "string", "x-spe-input": True}, "label": {"type": "string"}}},
        "title": {"type": "string"},
    },
}
DATASETS = {"cohort-a": Dataset("cohort-a", "/data/cohort-a", ("proj-a",)),
            "ega": Dataset("ega", "s3://controlled/ega/", ("proj-a",))}


def test_only_marked_values_are_inputs_wherever_they_sit() -> None:
    params = {"input": "a", "extra": ["b", "c"], "nested": {"ref": "d", "label": "x"},
              "title": "dataset://cohort-a/not-an-input"}
    assert input_values(SCHEMA, params) == [("/input", "a"), ("/extra/0", "b"),
                                            ("/extra/1", "c"), ("/nested/ref", "d")]


def test_dataset_uris_and_locations_inside_a_dataset_resolve() -> None:
    params = {"input": "dataset://cohort-a/x/y.tsv",
              "extra": ["/data/cohort-a/z.tsv", "s3://controlled/ega/part/1.vcf"]}
    refs = parse_refs(SCHEMA, params, DATASETS)
    assert [(r.pointer, r.dataset, r.path) for r in refs] == [
        ("/input", "cohort-a", "x/y.tsv"), ("/extra/0", "cohort-a", "z.tsv"),
        ("/extra/1", "ega", "part/1.vcf")]


@pytest.mark.parametrize("value", [
    "dataset://cohort-a/../secret", "dataset://cohort-a//x", "dataset://cohort-a/",
    "dataset://cohort-a/a\\b", "dataset://cohort-a/a\x00b",
    "/data/cohort-a-other/x", "/etc/passwd", "s3://controlled/other/x", "relative.tsv",
    "/data/cohort-a/../cohort-b/x",
])
def test_anything_outside_a_registered_dataset_is_refused(value: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_refs(SCHEMA, {"input": value}, DATASETS)
    assert err.value.errors[0][0] == "/input"


def test_set_pointer_replaces_nested_values() -> None:
    params = {"extra": ["a", "b"], "nested": {"ref": "x"}}
    set_pointer(params, "/extra/1", "B")
    set_pointer(params, "/nested/ref", "X")
    assert params == {"extra": ["a", "B"], "nested": {"ref": "X"}}
