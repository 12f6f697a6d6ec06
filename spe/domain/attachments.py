"""Rules for ``workflow_attachment`` file names. An accepted name is a relative POSIX path
that stays inside the bundle: no ``..``, no absolute path, no backslash, no NUL or control
characters, no duplicates."""

from __future__ import annotations

from collections.abc import Iterable

from spe.domain.errors import InvalidRequest

MAX_NAME = 255


def _problem(name: str) -> str | None:
    if not name or len(name) > MAX_NAME:
        return "empty or too long"
    return relative_path_problem(name)


def relative_path_problem(name: str) -> str | None:  # noqa: PLR0911 - one return per rule
    """Why ``name`` is not a safe relative POSIX path inside a folder, or None."""
    if not name:
        return "names no file"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "control characters (including NUL) are not allowed"
    if "\\" in name:
        return "backslashes are not allowed"
    if name.startswith("/"):
        return "absolute paths are not allowed"
    if any(p in ("..", ".") for p in name.split("/")):
        return "'.' and '..' segments are not allowed"
    if "" in name.split("/"):
        return "empty path segments are not allowed"
    return None


def check_attachment_names(names: Iterable[str]) -> list[str]:
    """The names, unchanged, if every one is safe and unique; else ``InvalidRequest``."""
    seen: set[str] = set()
    errors: list[tuple[str, str]] = []
    result = []
    for i, name in enumerate(names):
        problem = _problem(name)
        if problem is None and name in seen:
            problem = "duplicate attachment name"
        if problem:
            errors.append((f"/workflow_attachment/{i}", f"{name[:100]!r}: {problem}"))
        seen.add(name)
        result.append(name)
    if errors:
        raise InvalidRequest("workflow_attachment names are not safe", errors)
    return result
