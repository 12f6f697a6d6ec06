"""The JSON depth limit of requests (``spe.domain.json_limits``)."""

from __future__ import annotations

import json

import pytest

from spe.domain.errors import InvalidRequest
from spe.domain.json_limits import MAX_JSON_DEPTH, load_json, too_deep


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_depth_up_to_the_limit_is_parsed_and_one_more_is_refused() -> None:
    assert load_json(nested(MAX_JSON_DEPTH), "x") is not None
    with pytest.raises(InvalidRequest, match="x is nested deeper than 32 levels"):
        load_json(nested(MAX_JSON_DEPTH + 1), "x")


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 100, "b": "\\\"{" * 100, "c": ["]" * 50]})
    assert not too_deep(text)
    assert load_json(text, "x")["a"] == "[" * 100


def test_far_deeper_than_recursion_allows_is_refused_without_recursion() -> None:
    assert too_deep(nested(200_000))
    assert too_deep('{"a": ' * 200_000)


def test_malformed_json_is_left_to_the_parser() -> None:
    with pytest.raises(json.JSONDecodeError):
        load_json('{"a": [1, 2}', "x")
