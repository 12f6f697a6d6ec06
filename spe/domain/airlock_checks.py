"""The airlock's automatic checks, run on a release request before any reviewer sees it.

Findings: ``hard`` blocks the request (BLOCKED, the messages are the reason), ``soft`` flags
a file for reviewers, ``pass`` records that a check ran on a file. Checks see metadata, the
first 8 KiB of each file, the whole file as a stream of chunks (read again on each call)
and, for tables, a lazy row reader (the service builds them from the quarantine). Messages
never quote a value from the data; a finding's ``details.cells`` do (each cell's value is
its last item), and ``without_values`` strips them for requesters. ``CHECKS`` is the
registry: append a callable to add a check; one that raises becomes a hard finding (fail
closed). Content checks skip files the path check blocks: never read what may lie outside
the quarantine."""

from __future__ import annotations

import csv
import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from spe.domain.file_types import (
    MAX_OUTPUT_JSON_DEPTH,
    SVG_ACTIVE,
    CandidateFile,
    extension,
    type_problem,
    whole_text,
)
from spe.domain.json_limits import too_deep

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


def without_values(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings as a requester sees them: each flagged cell keeps its location (row and
    column labels, or a JSON pointer) and loses its value, always the cell's last item.
    Messages never carry a value from the data, so they stay."""
    out = []
    for finding in findings:
        details = dict(finding.get("details") or {})
        if "cells" in details:
            details["cells"] = [list(cell[:-1]) for cell in details["cells"]]
        out.append({**finding, "details": details})
    return out



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


def check_file_type(files: list[CandidateFile], settings: AirlockSettings) -> list[Finding]:
    out: list[Finding] = []
    for f in (f for f in files if path_problem(f) is None):
        ext = extension(f.path)
        if ext not in settings.allowed_types:
            out.append(Finding("file_type", f.path, HARD, f"{f.path!r}: type {ext or '(none)'!r}"
                               f" is not allowed ({', '.join(settings.allowed_types)})"))
        elif problem := type_problem(f, settings.max_file_bytes):
            out.append(Finding("file_type", f.path, HARD, f"{f.path!r}: {problem}"))
        elif ext == "svg" and SVG_ACTIVE.search(_svg_text(f, settings.max_file_bytes)):
            out.append(Finding("file_type", f.path, SOFT, f"{f.path!r}: the SVG contains "
                               "scripts, event handlers or embedded HTML"))
        else:
            out.append(Finding("file_type", f.path, PASS, f"{ext} content matches the name"))
    return out


def _svg_text(f: CandidateFile, limit: int) -> str:
    """The SVG as text, whole when it is within the size limit (else its head)."""
    data = b"".join(f.stream()) if f.size <= limit else f.head
    return data.decode("utf-8", "replace")


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


# JSON: where a count may sit. A number under a key that names a count (as a table header
# would: "n", "count", "total", "cases", "*_n", "*_count", ...), alone or in a list, is a
# count; every integer of a "count-like" object (one whose values are all integers, such
# as {"Oban": 3, "Glasgow": 12}) is a possible count. Integers elsewhere (in lists of
# records, mixed objects) and numbers in strings are not seen.


def _json_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _pointer(parent: str, key: str | int) -> str:
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


@dataclass
class _JsonCounts:
    threshold: int
    counts: list[list[Any]] = field(default_factory=list)  # [["/groups/n", 4], ...]
    possible: list[list[Any]] = field(default_factory=list)

    def visit(self, value: Any, pointer: str = "", counting: bool = False) -> None:
        """Walk ``value``; ``counting``: it sits under a key that names a count."""
        pending: deque[tuple[Any, str, bool]] = deque([(value, pointer, counting)])
        while pending:
            value, pointer, counting = pending.popleft()
            if isinstance(value, dict):
                count_like = bool(value) and all(_json_integer(v) is not None
                                                 for v in value.values())
                for key, item in value.items():
                    named = is_count_header(str(key))
                    self._leaf(item, _pointer(pointer, key), named, count_like)
                    pending.append((item, _pointer(pointer, key), named))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    self._leaf(item, _pointer(pointer, i), counting, False)
                    pending.append((item, _pointer(pointer, i), counting))

    def _leaf(self, value: Any, pointer: str, counting: bool, count_like: bool) -> None:
        number = _json_integer(value)
        if number is None or not 1 <= number < self.threshold:
            return
        if counting:
            self.counts.append([pointer, number])
        elif count_like:
            self.possible.append([pointer, number])


def _json_small_counts(f: CandidateFile, settings: AirlockSettings) -> list[Finding]:
    threshold = settings.count_threshold
    if not f.whole or f.size > settings.max_file_bytes:
        return [Finding("small_counts", f.path, HARD, f"{f.path!r}: too large to check "
                        "for counts")]
    text = whole_text(f)
    if too_deep(text, MAX_OUTPUT_JSON_DEPTH):
        return [Finding("small_counts", f.path, HARD, f"{f.path!r}: nested too deeply "
                        "to check for counts")]
    try:
        data = json.loads(text)
    except ValueError:
        return [Finding("small_counts", f.path, HARD,
                        f"{f.path!r} could not be read as JSON")]
    found = _JsonCounts(threshold)
    found.visit(data)
    out = []
    for cells, kind in ((found.counts, "counts"), (found.possible, "possible_counts")):
        if cells:
            what = ("count(s)" if kind == "counts"
                    else "possible count(s) (integers of an object of integers)")
            out.append(Finding("small_counts", f.path, SOFT,
                               f"{f.path!r}: {len(cells)} {what} from 1 to {threshold - 1}"
                               "; check whether they count people",
                               {"kind": kind, "threshold": threshold, "flagged": len(cells),
                                "cells": cells[:MAX_CELLS]}))
    return out or [Finding("small_counts", f.path, PASS,
                           f"no counts from 1 to {threshold - 1}", {"threshold": threshold})]


def check_small_counts(files: list[CandidateFile], settings: AirlockSettings
                       ) -> list[Finding]:
    out: list[Finding] = []
    for f in (f for f in files if path_problem(f) is None):
        if extension(f.path) in ("csv", "tsv"):
            out.extend(_small_counts(f, settings.count_threshold))
        elif extension(f.path) == "json":
            out.extend(_json_small_counts(f, settings))
    return out


CHECKS: list[Check] = [check_path, check_file_type, check_size, check_total_size,
                       check_small_counts]
