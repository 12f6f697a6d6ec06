"""Data references in workflow params.

A parameter schema marks inputs with the keyword ``x-spe-input: true`` (on a string
property, or on the ``items`` of an array). An input value is ``dataset://<id>/<path>``
or a URI inside a registered dataset's location (an absolute path below it, or
``s3://bucket/prefix/...`` below its prefix). Anything else, any ``..``, absolute inner
path, backslash or control character is refused before a run is accepted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from spe.domain.attachments import relative_path_problem
from spe.domain.errors import InvalidRequest
from spe.domain.policy import Dataset

INPUT_KEYWORD = "x-spe-input"
SCHEME = "dataset://"


@dataclass(frozen=True)
class DataRef:
    """One input: where it sits in the params (JSON pointer), which dataset, which file."""

    pointer: str
    dataset: str
    path: str
    raw: str


def _walk(schema: Any, value: Any, pointer: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(schema, dict):
        return
    if schema.get(INPUT_KEYWORD) is True and not isinstance(value, list | dict):
        yield pointer, value
        return
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                yield from _walk(sub, value[name], f"{pointer}/{_escape(name)}")
    elif isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            yield from _walk(items, item, f"{pointer}/{i}")


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def input_values(schema: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(pointer, value)`` of every value the schema marks as an input."""
    return list(_walk(schema, params, ""))


def _innermost(uri: str, datasets: dict[str, Dataset]) -> tuple[str, str] | None:
    """The most specific dataset holding ``uri`` and the path inside it. The policy loader
    refuses nested locations; should two nest anyway, the inner one is authorised."""
    holders = [ds for ds in datasets.values() if uri.startswith(ds.prefix)]
    if not holders:
        return None
    inner = max(holders, key=lambda ds: len(ds.prefix))
    return inner.id, uri[len(inner.prefix):]


def _locate(raw: str, datasets: dict[str, Dataset]) -> tuple[str, str] | None:
    if raw.startswith(SCHEME):
        dataset, _, path = raw[len(SCHEME):].partition("/")
        named = datasets.get(dataset)
        if named is None:
            return dataset, path
        return _innermost(named.prefix + path, datasets) or (dataset, path)
    return _innermost(raw, datasets)


def parse_refs(schema: dict[str, Any], params: dict[str, Any],
               datasets: dict[str, Dataset], what: str = "workflow_params") -> list[DataRef]:
    """Every input reference in ``params``; 400 listing each malformed one (``what`` names
    where they came from)."""
    refs, errors = [], []
    for pointer, value in input_values(schema, params):
        if not isinstance(value, str):
            errors.append((pointer, "a data reference must be a string"))
            continue
        located = _locate(value, datasets)
        if located is None:
            errors.append((pointer, "not a dataset:// reference nor inside a registered "
                                    "dataset"))
            continue
        dataset, path = located  # an unknown dataset id is refused by authorisation (403)
        problem = relative_path_problem(path)
        if problem:
            errors.append((pointer, f"{value[:200]!r}: {problem}"))
            continue
        refs.append(DataRef(pointer=pointer, dataset=dataset, path=path, raw=value))
    if errors:
        raise InvalidRequest(f"{what} name data that cannot be used", errors)
    return refs


def set_pointer(params: dict[str, Any], pointer: str, value: Any) -> None:
    """Replace the value at ``pointer`` (as produced by ``input_values``)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    target: Any = params
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
