"""The airlock's automatic checks, run on a release request before any reviewer sees it.

Findings: ``hard`` blocks the request (BLOCKED, the messages are the reason), ``soft`` flags
a file for reviewers, ``pass`` records that a check ran on a file. Checks see metadata, the
first 8 KiB of each file and, for tables, a lazy row reader (the service builds them from
the quarantine). ``CHECKS`` is the registry: append a callable to add a check; one that
raises becomes a hard finding (fail closed). Content checks skip files the path check
blocks: never read what may lie outside the quarantine."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any

HARD, SOFT, PASS = "hard", "soft", "pass"
MAX_CELLS = 50  # cells listed in one small_counts finding
KNOWN_TYPES = ("csv", "tsv", "txt", "json", "png", "pdf", "svg")  # the types we can sniff
RESERVED_PATHS = frozenset({"ro-crate-metadata.json", "ro-crate-preview.html"})


@dataclass(frozen=True)
class AirlockSettings:
    required_approvals: int = 2
    count_threshold: int = 10  # CSV/TSV counts from 1 to threshold - 1 are flagged
    max_file_bytes: int = 50 * 2**20
    max_total_bytes: int = 200 * 2**20
    allowed_types: tuple[str, ...] = KNOWN_TYPES

    @classmethod
    def from_policy(cls, raw: Mapping[str, Any] | None) -> AirlockSettings:
        """Settings from a project's ``airlock`` mapping; absent keys keep their defaults.
        Raises ValueError naming unknown keys, bad values or types we cannot check."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown airlock setting(s): {', '.join(map(str, unknown))}")
        values: dict[str, Any] = {name: _types_setting(value) if name == "allowed_types"
                                  else _int_setting(name, value)
                                  for name, value in raw.items()}
        return cls(**values)


def _int_setting(name: str, value: Any) -> int:
    least = 0 if name == "count_threshold" else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"airlock setting {name}: a whole number >= {least}")
    return value


def _types_setting(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("airlock setting allowed_types: a list of file extensions")
    types = tuple(dict.fromkeys(v.strip().lstrip(".").lower() for v in value))
    unsupported = [t for t in types if t not in KNOWN_TYPES]
    if unsupported:
        raise ValueError(f"airlock setting allowed_types: no content check for "
                         f"{', '.join(unsupported)} (known: {', '.join(KNOWN_TYPES)})")
    return types


@dataclass(frozen=True)
class CandidateFile:
    """A requested file, read from the run's quarantine. The store refuses a key that
    leads outside it (``..``, a symlink out), so a candidate is always a file inside."""

    path: str  # relative POSIX path as requested
    size: int
    head: bytes  # the first 8 KiB
    text_rows: Callable[[], Iterator[list[str]]] | None  # csv/tsv only: a lazy row reader


@dataclass(frozen=True)
class Finding:
    check: str  # "path", "file_type", "size", "total_size", "small_counts", ...
    path: str  # "" for request-wide findings
    severity: str  # HARD | SOFT | PASS
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Check = Callable[[list[CandidateFile], AirlockSettings], list[Finding]]


def run_checks(files: list[CandidateFile], settings: AirlockSettings) -> list[Finding]:
    """Every check in ``CHECKS``, in order; a check that raises is a hard finding."""
    findings: list[Finding] = []
    for check in list(CHECKS):
        try:
            findings.extend(check(files, settings))
        except Exception as exc:
            name = getattr(check, "__name__", "check").removeprefix("check_")
            findings.append(Finding(name, "", HARD,
                                    f"the {name} check could not run ({type(exc).__name__})"))
    return findings


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == HARD]


def extension(path: str) -> str:
    return PurePosixPath(path).suffix.removeprefix(".").lower()


# C0/C1 controls and the bidirectional overrides that make a name read differently
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def path_problem(f: CandidateFile) -> str | None:
    p = f.path
    parts = p.split("/")
    return ("is empty" if not p
            else "is absolute" if p.startswith("/")
            else "contains a backslash" if "\\" in p
            else "contains control or bidirectional characters" if _BAD_CHARS.search(p)
            else "contains '..'" if ".." in parts
            else "has empty or '.' segments" if "" in parts or "." in parts
            else "is reserved for the release's RO-Crate" if p in RESERVED_PATHS
            else None)


def check_path(files: list[CandidateFile], settings: AirlockSettings) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    for f in files:
        problem = path_problem(f) or ("is requested twice" if f.path in seen else None)
        seen.add(f.path)
        out.append(Finding("path", f.path, HARD, f"{f.path!r} {problem}") if problem
                   else Finding("path", f.path, PASS, "a plain path inside the quarantine"))
    return out


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"%PDF-", "pdf"), (b"\x7fELF", "an ELF executable"),
          (b"PK\x03\x04", "a ZIP archive"), (b"PK\x05\x06", "a ZIP archive"),
          (b"\x1f\x8b", "gzip data"), (b"\xfd7zXZ\x00", "xz data"), (b"GIF8", "a GIF image"),
          (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"\xff\xd8\xff", "a JPEG image"))
_SVG = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?(?:(?:<!--.*?-->|<!DOCTYPE\s+svg[^>\[]*>)\s*)*"
                  r"<svg[\s>/]", re.S)
_SVG_ACTIVE = re.compile(r"<script|javascript:|<foreignObject|\son[a-z]+\s*=", re.I)


def _magic(head: bytes) -> str | None:
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _text(head: bytes, truncated: bool) -> str | None:
    """The head as UTF-8 text, or None (NUL bytes, invalid UTF-8). A multi-byte character
    cut by the 8 KiB boundary of a longer file is fine."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (truncated and exc.reason == "unexpected end of data"):
            return None
        text = head[:exc.start].decode("utf-8")
    return text.removeprefix("\ufeff")


def _delimited_problem(ext: str, text: str) -> str | None:
    first = text.split("\n", 1)[0]
    if ext == "tsv" and "\t" not in first and ("," in first or ";" in first):
        return "the header is not tab-separated"
    if ext == "csv" and "," not in first and ("\t" in first or ";" in first):
        return "the header is not comma-separated"
    return None


def _json_problem(text: str, complete: bool) -> str | None:
    if not text.lstrip().startswith(("{", "[")):
        return "content is not a JSON object or array"
    try:
        if complete:
            json.loads(text)
    except ValueError:
        return "content does not parse as JSON"
    return None


def type_problem(f: CandidateFile) -> str | None:
    """Why the content does not match the (allowed) extension, or None."""
    ext, magic = extension(f.path), _magic(f.head)
    if ext in ("png", "pdf"):
        return None if magic == ext else f"content is {magic or 'unrecognised'}, not {ext}"
    if magic:
        return f"content is {magic}, not {ext}"
    text = _text(f.head, truncated=f.size > len(f.head))
    if text is None:
        return "content is not UTF-8 text (binary data or NUL bytes)"
    return _text_problem(ext, text, complete=f.size <= len(f.head))


def _text_problem(ext: str, text: str, complete: bool) -> str | None:
    if ext in ("csv", "tsv"):
        return _delimited_problem(ext, text)
    if ext == "json":
        return _json_problem(text, complete)
    if ext == "svg" and not _SVG.match(text):
        return "content is not an SVG document"
    return None


def check_file_type(files: list[CandidateFile], settings: AirlockSettings) -> list[Finding]:
    out: list[Finding] = []
    for f in (f for f in files if path_problem(f) is None):
        ext = extension(f.path)
        if ext not in settings.allowed_types:
            out.append(Finding("file_type", f.path, HARD, f"{f.path!r}: type {ext or '(none)'!r}"
                               f" is not allowed ({', '.join(settings.allowed_types)})"))
        elif problem := type_problem(f):
            out.append(Finding("file_type", f.path, HARD, f"{f.path!r}: {problem}"))
        elif ext == "svg" and _SVG_ACTIVE.search(f.head.decode("utf-8", "replace")):
            out.append(Finding("file_type", f.path, SOFT, f"{f.path!r}: the SVG contains "
                               "scripts, event handlers or embedded HTML"))
        else:
            out.append(Finding("file_type", f.path, PASS, f"{ext} content matches the name"))
    return out


def check_size(files: list[CandidateFile], settings: AirlockSettings) -> list[Finding]:
    limit = settings.max_file_bytes
    return [Finding("size", f.path, HARD, f"{f.path!r} is {f.size} bytes, over the limit of "
                    f"{limit}", {"size": f.size, "limit": limit}) if f.size > limit
            else Finding("size", f.path, PASS, f"{f.size} bytes (limit {limit})")
            for f in files]


def check_total_size(files: list[CandidateFile], settings: AirlockSettings) -> list[Finding]:
    total, limit = sum(f.size for f in files), settings.max_total_bytes
    if total > limit:
        return [Finding("total_size", "", HARD, f"the request is {total} bytes, over the limit"
                        f" of {limit}", {"total": total, "limit": limit})]
    return [Finding("total_size", "", PASS, f"{total} bytes in {len(files)} file(s) "
                    f"(limit {limit})")]


_COUNT_HEADERS = frozenset({"n", "count", "freq", "frequency", "number", "cases", "total"})
_INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?")
_MISSING = frozenset({"", "na", "nan", "null", "none"})


def is_count_header(name: str) -> bool:
    key = re.sub(r"[\s-]+", "_", name.strip().lower())
    return key in _COUNT_HEADERS or key.endswith(("_n", "_count"))


def _integer(cell: str) -> int | None:
    text = cell.strip()
    return int(text.split(".", 1)[0]) if _INTEGER.fullmatch(text) else None


@dataclass
class _Column:
    label: str
    counts: bool  # the header names a count
    all_integers: bool = True
    small: list[list[Any]] = field(default_factory=list)  # [["row 3", "col n", 4], ...]
    n_small: int = 0

    def add(self, row: int, cell: str, threshold: int) -> None:
        value = _integer(cell)
        if value is None:
            self.all_integers = self.all_integers and cell.strip().lower() in _MISSING
        elif 1 <= value < threshold:
            self.n_small += 1
            if len(self.small) < MAX_CELLS:
                self.small.append([f"row {row}", self.label, value])


def _scan(rows: Iterator[list[str]], threshold: int) -> list[_Column]:
    """Rows are numbered from 1, the header included. A first row of integers is data."""
    columns: list[_Column] = []
    for number, raw in enumerate(rows, start=1):
        row = [c.removeprefix("\ufeff") for c in raw] if number == 1 else raw  # a kept BOM
        if number == 1 and not (row and all(_integer(c) is not None for c in row)):
            columns = [_Column(f"col {name.strip() or i + 1}", is_count_header(name))
                       for i, name in enumerate(row)]
            continue
        for i, cell in enumerate(row):
            if i >= len(columns):
                columns.append(_Column(f"col {i + 1}", counts=False))
            columns[i].add(number, cell, threshold)
    return columns


def _cells_finding(path: str, columns: list[_Column], threshold: int,
                   possible: bool) -> Finding:
    n = sum(c.n_small for c in columns)
    names = ", ".join(c.label.removeprefix("col ") for c in columns)
    message = (f"{path!r}: possible counts: {n} integer value(s) from 1 to {threshold - 1} "
               f"in column(s) {names}; check whether they count people" if possible else
               f"{path!r}: {n} count(s) from 1 to {threshold - 1} in count column(s) {names}")
    cells = [cell for c in columns for cell in c.small][:MAX_CELLS]
    return Finding("small_counts", path, SOFT, message, {
        "kind": "possible_counts" if possible else "counts", "threshold": threshold,
        "columns": [c.label for c in columns], "flagged": n, "cells": cells})


def _small_counts(f: CandidateFile, threshold: int) -> list[Finding]:
    if f.text_rows is None:
        return [Finding("small_counts", f.path, HARD, f"{f.path!r}: no table reader")]
    try:
        columns = _scan(f.text_rows(), threshold)
    except (ValueError, csv.Error) as exc:
        return [Finding("small_counts", f.path, HARD,
                        f"{f.path!r} could not be read as a table ({type(exc).__name__})")]
    counts = [c for c in columns if c.counts and c.n_small]
    possible = [c for c in columns if not c.counts and c.all_integers and c.n_small]
    out = [_cells_finding(f.path, cs, threshold, possible=p)
           for cs, p in ((counts, False), (possible, True)) if cs]
    return out or [Finding("small_counts", f.path, PASS,
                           f"no counts from 1 to {threshold - 1}", {"threshold": threshold})]


def check_small_counts(files: list[CandidateFile], settings: AirlockSettings
                       ) -> list[Finding]:
    return [finding for f in files
            if extension(f.path) in ("csv", "tsv") and path_problem(f) is None
            for finding in _small_counts(f, settings.count_threshold)]


CHECKS: list[Check] = [check_path, check_file_type, check_size, check_total_size,
                       check_small_counts]
