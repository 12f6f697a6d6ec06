"""JSON from requests is parsed only when it is nested no deeper than ``MAX_JSON_DEPTH``
levels: deeper documents are refused as 400 before ``json.loads`` (whose recursion would
otherwise end in a ``RecursionError``, a 500). The depth is found without recursion."""

from __future__ import annotations

import json
import re
from typing import Any

from spe.domain.errors import InvalidRequest

MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def too_deep(text: str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the arrays and objects of ``text`` (brackets inside strings not counted)
    nest deeper than ``max_depth``; malformed text is left to the JSON parser."""
    depth = 0
    for bracket in _BRACKETS.finditer(_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > max_depth:
            return True
    return False


def depth_error(name: str, max_depth: int = MAX_JSON_DEPTH) -> InvalidRequest:
    return InvalidRequest(f"{name} is nested deeper than {max_depth} levels",
                          [(f"/{name}" if name else "/", f"at most {max_depth} levels of "
                            "arrays and objects")])


def load_json(text: str, name: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)``, refusing a document nested deeper than ``max_depth`` with a
    400 that names the field; malformed JSON raises ``json.JSONDecodeError`` as usual."""
    if too_deep(text, max_depth):
        raise depth_error(name, max_depth)
    return json.loads(text)
