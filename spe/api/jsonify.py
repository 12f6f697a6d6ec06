"""Response bodies as compact JSON, encoded by orjson.

connexion's Flask default is ``Jsonifier(flask.json, indent=2)``: the indentation forces
the pure-Python encoder and makes bodies about 40 % larger. This one writes the same
documents without whitespace, through orjson. A value orjson refuses (an integer beyond
64 bits in echoed ``workflow_params``, a non-string key) falls back to the standard
encoder, so what was encodable before still is. Request bodies are still parsed by the
standard library (``loads`` is inherited): orjson would refuse big integers there."""

from __future__ import annotations

from typing import Any

import orjson
from connexion.jsonifier import Jsonifier

# datetimes and dataclasses go to the standard encoder, as before (same formatting)
_OPTIONS = (orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_DATACLASS)


class FastJsonifier:
    """connexion's ``Jsonifier`` interface (``dumps``/``loads``)."""

    def __init__(self) -> None:
        self._standard = Jsonifier(separators=(",", ":"))

    def dumps(self, data: Any, **kwargs: Any) -> str:
        if not kwargs:
            try:
                return orjson.dumps(data, option=_OPTIONS).decode()
            except (orjson.JSONEncodeError, TypeError):
                pass
        return str(self._standard.dumps(data, **kwargs))

    def loads(self, data: Any) -> Any:
        return self._standard.loads(data)
