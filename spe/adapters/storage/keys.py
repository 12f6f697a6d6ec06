"""Object keys: the checks every ObjectStore makes before any I/O.

A key is a relative POSIX path of non-empty segments, none of them ``.`` or ``..``; no
backslash, NUL or other control character; valid UTF-8 and at most 1024 bytes (the S3
limit). A list prefix is ``""`` or a key, optionally ending in ``/``.
"""

from __future__ import annotations

from collections.abc import Iterator

from spe.domain.errors import InvalidRequest

MAX_KEY_BYTES = 1024
_BAD_SEGMENTS = frozenset({"", ".", ".."})


def key_problem(key: object) -> str | None:
    """Why ``key`` is not a safe object key, or None when it is."""
    if not isinstance(key, str) or not key:
        return "a key must be a non-empty string"
    return next((message for bad, message in _checks(key) if bad), None)


def _checks(key: str) -> Iterator[tuple[bool, str]]:
    """(failed, message) of each rule, in order; stops early at the first failure."""
    yield (any(ord(c) < 0x20 or ord(c) == 0x7F for c in key),
           "control characters are not allowed in a key")
    yield "\\" in key, "backslashes are not allowed in a key"
    yield key.startswith("/"), "a key must be a relative path"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        yield True, "a key must be valid UTF-8"
        return
    yield size > MAX_KEY_BYTES, f"a key must be at most {MAX_KEY_BYTES} bytes"
    yield (any(segment in _BAD_SEGMENTS for segment in key.split("/")),
           "empty, '.' and '..' path segments are not allowed in a key")


def check_key(key: str) -> str:
    """``key`` itself, or ``InvalidRequest`` when it is not a safe object key."""
    problem = key_problem(key)
    if problem is not None:
        raise InvalidRequest(f"invalid object key {_shown(key)}: {problem}")
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` itself (``""``, or a key optionally ending in ``/``), or ``InvalidRequest``."""
    if prefix == "":
        return prefix
    body = prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix
    problem = key_problem(body)
    if problem is not None:
        raise InvalidRequest(f"invalid key prefix {_shown(prefix)}: {problem}")
    return prefix


def _shown(value: object) -> str:
    """A short, printable form of a rejected value for error messages."""
    return repr(value)[:120]
