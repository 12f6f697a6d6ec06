"""Connexion's request validators, with errors in plain words and a JSON pointer instead
of jsonschema's dump ("'abc' is not of type 'integer'\\n\\nFailed validating 'type' in
schema: ..."): ``page_size (query parameter): 'abc' is not of type 'integer'``,
``/workflow_type: 42 is not of type 'string'``."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.utils import is_null, is_nullable
from connexion.validators import (
    VALIDATOR_MAP,
    FormDataValidator,
    JSONRequestBodyValidator,
    MultiPartFormDataValidator,
    ParameterValidator,
)
from jsonschema import Draft4Validator, ValidationError


def pointer(path: Iterable[Any]) -> str:
    """RFC 6901: ``/a/0/b``, with ``~`` and ``/`` escaped; the root is ``/``."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts)


def plain(exc: ValidationError) -> str:
    return f"{pointer(exc.absolute_path)}: {exc.message[:300]}"


class PlainParameterValidator(ParameterValidator):  # type: ignore[misc]  # untyped base
    @staticmethod
    def validate_parameter(parameter_type: str, value: Any, param: dict[str, Any],
                           param_name: str | None = None) -> str | None:
        if is_nullable(param) and is_null(value):
            return None
        if value is None:
            if param.get("required"):
                return f"{param['name']} ({parameter_type} parameter): required"
            return None
        schema = copy.deepcopy(param).get("schema", param)
        try:
            Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
        except ValidationError as exc:
            return f"{param['name']} ({parameter_type} parameter): {exc.message[:300]}"
        return None


class _PlainBody:
    _validator: Any

    def _validate(self, body: Any) -> Any:
        if body is None:
            raise BadRequestProblem(detail="the request body must not be empty")
        errors = sorted(self._validator.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            raise BadRequestProblem(detail="; ".join(plain(e) for e in errors[:10]))
        return None


class PlainJsonValidator(_PlainBody, JSONRequestBodyValidator):  # type: ignore[misc]
    pass


class PlainFormValidator(_PlainBody, FormDataValidator):  # type: ignore[misc]
    def _validate(self, body: Any) -> Any:
        if not isinstance(body, dict):
            raise BadRequestProblem(detail="the form must be a mapping of fields")
        return super()._validate(body)


class PlainMultipartValidator(_PlainBody, MultiPartFormDataValidator):  # type: ignore[misc]
    def _validate(self, body: Any) -> Any:
        if not isinstance(body, dict):
            raise BadRequestProblem(detail="the form must be a mapping of fields")
        return super()._validate(body)


VALIDATORS: dict[str, Any] = {
    **VALIDATOR_MAP,
    "parameter": PlainParameterValidator,
    "body": MediaTypeDict({
        "*/*json": PlainJsonValidator,
        "application/x-www-form-urlencoded": PlainFormValidator,
        "multipart/form-data": PlainMultipartValidator,
    }),
}


class _NotContentTypeNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            "this operation accepts multiple content types")


def quiet_content_type_notice() -> None:
    """Connexion logs a WARNING on every request to an operation with several request
    content types (``POST /runs``: multipart, JSON, urlencoded); it is no problem."""
    logger = logging.getLogger("connexion.operations.openapi3")
    if not any(isinstance(f, _NotContentTypeNotice) for f in logger.filters):
        logger.addFilter(_NotContentTypeNotice())
