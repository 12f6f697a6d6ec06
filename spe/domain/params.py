"""Validation of what a caller sends: workflow params (JSON Schema) and engine options
(a closed, typed, bounded list). Errors carry JSON pointers."""

from __future__ import annotations

import math
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from spe.domain.catalog import EngineOption, WorkflowEntry
from spe.domain.errors import InvalidRequest

_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
MAX_ERRORS = 50


def _pointer(err: ValidationError) -> str:
    return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in err.absolute_path)


def validate_params(entry: WorkflowEntry, params: dict[str, Any]) -> dict[str, Any]:
    """Params with the schema's top-level defaults filled in; 400 listing every error."""
    validator = Draft202012Validator(entry.params_schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        raise InvalidRequest(
            f"workflow_params do not match the schema of {entry.ref}",
            [(_pointer(e), e.message[:300]) for e in errors[:MAX_ERRORS]],
        )
    filled = dict(params)
    for name, spec in entry.params_schema.get("properties", {}).items():
        if name not in filled and isinstance(spec, dict) and "default" in spec:
            filled[name] = spec["default"]
    return filled


def _parse_value(opt: EngineOption, raw: str) -> Any:
    text = raw.strip()
    value: Any
    if opt.type == "boolean":
        if text.lower() not in _TRUE | _FALSE:
            raise ValueError("must be true or false")
        value = text.lower() in _TRUE
    elif opt.type == "integer":
        value = int(text, 10)
    elif opt.type == "number":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
    else:
        value = raw
        if opt.choices and value not in opt.choices:
            raise ValueError(f"must be one of {list(opt.choices)}")
    if opt.type in ("integer", "number"):
        if opt.minimum is not None and value < opt.minimum:
            raise ValueError(f"must be >= {opt.minimum}")
        if opt.maximum is not None and value > opt.maximum:
            raise ValueError(f"must be <= {opt.maximum}")
    return value


def validate_engine_options(entry: WorkflowEntry, raw: dict[str, Any]) -> dict[str, Any]:
    """Typed option values (defaults filled in). Unknown names and bad values: 400."""
    allowed = {o.name: o for o in entry.engine_options}
    errors: list[tuple[str, str]] = []
    values: dict[str, Any] = {o.name: o.default for o in entry.engine_options}
    for name, given in raw.items():
        ptr = f"/workflow_engine_parameters/{name}"
        opt = allowed.get(name)
        if opt is None:
            errors.append((ptr, f"not an allowed option of {entry.ref}; allowed: "
                                f"{sorted(allowed)}"))
            continue
        if not isinstance(given, str | int | float | bool):
            errors.append((ptr, "must be a string"))
            continue
        try:
            values[name] = _parse_value(opt, str(given).lower() if isinstance(given, bool)
                                        else str(given))
        except ValueError as exc:
            errors.append((ptr, f"{opt.type}: {exc}"))
    if errors:
        raise InvalidRequest("workflow_engine_parameters are not allowed", errors)
    return values
