"""Settings problems in the words of the person who set them: the environment variable
(``SPE_PORT``), or the key of the ``SPE_CONFIG`` file, and what is wrong with it; never the
value (it may be a secret) nor the validation library's links."""

from __future__ import annotations

import os

from pydantic import ValidationError

ENV_PREFIX = "SPE_"


def _where(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return ""
    name = str(loc[0])
    where = ENV_PREFIX + name.upper()
    if os.environ.get("SPE_CONFIG") and where not in os.environ:
        where += f" (or {name} in SPE_CONFIG)"
    return where + ("/" + "/".join(str(p) for p in loc[1:]) if len(loc) > 1 else "")


def describe(exc: ValidationError) -> str:
    """One line per problem, joined with "; "."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        where = _where(tuple(error.get("loc") or ()))
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems) or "invalid settings"
