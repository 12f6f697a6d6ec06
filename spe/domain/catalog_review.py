"""A catalog review rule checked by machine: approved workflows never echo data values in
messages. A workflow's messages (exceptions it raises, what it prints to the engine's
streams or logs through ``logging``/``warnings``) end up in the engine's log, so they may
name columns, files and counts, never a value read from the input.

The check is static and deliberately simple (docs/catalog.md, "Review rules"): in every
Python script of a bundle, each value interpolated into a message must be *provably
safe*: a constant, ``len(...)`` of anything (a count), a Snakemake parameter or path
(``snakemake.params``, ``.input``, ``.output``, ``.log``, ``.config``, ``.threads``,
``.resources``, ``.rule``, also through an alias such as ``sm = snakemake``), or a name
every assignment of which is built from such values (``list``, ``str``, ``sorted``,
``", ".join``, arithmetic, f-strings, lists and tuples of them). Anything else, a row,
a header, a loop variable, a value from a file, is reported with its line. A message
the approvers vouch for may carry the marker ``# review: no data`` on its first line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MARKER = "# review: no data"
ROOT = "snakemake"
SAFE_ROOT_FIELDS = frozenset({"params", "input", "output", "log", "config", "threads",
                              "resources", "rule"})
SAFE_CALLS = frozenset({"str", "int", "float", "bool", "list", "tuple", "sorted", "repr",
                        "round", "abs", "set", "frozenset"})
LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception",
                         "critical", "log"})
STREAMS = frozenset({"stdout", "stderr"})


@dataclass(frozen=True)
class MessageProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def reads_enclave_data(params_schema: Any) -> bool:
    """Whether a workflow takes a dataset reference (``x-spe-input``): the rule applies to
    such workflows; one that reads only files shipped in its bundle has no enclave data
    to echo."""
    if isinstance(params_schema, dict):
        return params_schema.get("x-spe-input") is True or any(
            reads_enclave_data(v) for v in params_schema.values())
    if isinstance(params_schema, list):
        return any(reads_enclave_data(v) for v in params_schema)
    return False


def message_problems(source: str) -> list[MessageProblem]:
    """Every message of ``source`` (a Python script) that interpolates a value not
    provably safe. A script that does not parse is one problem."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [MessageProblem(exc.lineno or 0, "does not parse as Python")]
    lines = source.splitlines()
    known = _known(tree)
    problems = []
    for node, parts in _messages(tree):
        if MARKER in (lines[node.lineno - 1] if node.lineno <= len(lines) else ""):
            continue
        for part in parts:
            if not _is_safe(part, known):
                problems.append(MessageProblem(node.lineno, (
                    f"a message interpolates {ast.unparse(part)[:80]!r}, which may be a "
                    "value read from the data")))
    return sorted(problems, key=lambda p: p.line)


# -- what counts as a message --------------------------------------------------------------


def _messages(tree: ast.AST) -> Iterator[tuple[ast.stmt | ast.expr, list[ast.expr]]]:
    """(node, the expressions its message interpolates) for every raise and every call
    that writes to the engine's streams or logs."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            yield node, _interpolated(node.exc)
        elif isinstance(node, ast.Call) and _writes_to_log(node):
            parts = [p for arg in node.args for p in _interpolated(arg)]
            yield node, parts


def _writes_to_log(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name) and func.id == "print":
        target = next((k.value for k in call.keywords if k.arg == "file"), None)
        return target is None or _is_stream(target)
    if isinstance(func, ast.Attribute):
        if func.attr == "write":
            return _is_stream(func.value)
        if func.attr == "warn" and isinstance(func.value, ast.Name) \
                and func.value.id == "warnings":
            return True
        return func.attr in LOG_METHODS and isinstance(func.value, ast.Name | ast.Attribute) \
            and _dotted(func.value).split(".")[0] in ("logging", "log", "logger")
    return False


def _is_stream(node: ast.expr) -> bool:
    return _dotted(node) in {f"sys.{s}" for s in STREAMS}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _interpolated(node: ast.expr) -> list[ast.expr]:
    """The values a message expression is built from (its literal text aside)."""
    if isinstance(node, ast.Constant) or (isinstance(node, ast.Name)
                                          and node.id[:1].isupper()):  # ``raise SomeError``
        return []
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _interpolated(node.left) + _interpolated(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) \
            and isinstance(node.left, ast.Constant):
        right = node.right
        return list(right.elts) if isinstance(right, ast.Tuple) else [right]
    if isinstance(node, ast.Call):
        return _call_parts(node)
    return [node]


def _call_parts(node: ast.Call) -> list[ast.expr]:
    """``"...".format(a, b)`` -> a, b; ``SomeError(message)`` -> the message's values."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "format" \
            and isinstance(func.value, ast.Constant):
        return [*node.args, *(k.value for k in node.keywords)]
    if isinstance(func, ast.Name) and func.id[:1].isupper():  # an exception class
        return [p for arg in node.args for p in _interpolated(arg)]
    return [node]


# -- what counts as safe --------------------------------------------------------------------


@dataclass(frozen=True)
class _Known:
    safe: frozenset[str]  # names bound only to safe values
    aliases: frozenset[str]  # names bound only to the snakemake object itself


def _known(tree: ast.AST) -> _Known:
    """Iterated to a fixed point over the script's plain assignments. A name bound any
    other way (a loop, ``with``, an argument, ``+=``, unpacking) is never safe."""
    assigned, unsafe = _assignments(tree)
    aliases = {ROOT}
    safe = {ROOT}
    changed = True
    while changed:
        changed = False
        known = _Known(frozenset(safe), frozenset(aliases))
        for name, values in assigned.items():
            if name in unsafe:
                continue
            if name not in aliases and all(isinstance(v, ast.Name) and v.id in aliases
                                           for v in values):
                aliases.add(name)
                changed = True
            if name not in safe and all(_is_safe(v, known) for v in values):
                safe.add(name)
                changed = True
    return _Known(frozenset(safe), frozenset(aliases))


def _assignments(tree: ast.AST) -> tuple[dict[str, list[ast.expr]], set[str]]:
    assigned: dict[str, list[ast.expr]] = {}
    unsafe: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
                else:
                    unsafe |= _bound(target)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor
                        | ast.comprehension | ast.NamedExpr):
            unsafe |= _bound(node.target)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            unsafe |= _bound(node.optional_vars)
        elif isinstance(node, ast.arguments):
            unsafe |= {a.arg for a in [*node.posonlyargs, *node.args, *node.kwonlyargs]}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            unsafe.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            unsafe |= set(node.names)
    return assigned, unsafe


def _bound(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _is_safe(node: ast.expr, known: _Known) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in known.safe
    if isinstance(node, ast.Attribute | ast.Subscript):
        return _snakemake_field(node, known)
    if isinstance(node, ast.Call):
        return _safe_call(node, known)
    parts = _parts(node)
    return parts is not None and all(_is_safe(p, known) for p in parts)


def _parts(node: ast.expr) -> list[ast.expr] | None:
    """What a composite value (f-string, arithmetic, list...) is built from; None for
    anything else."""
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return list(node.elts)
    if isinstance(node, ast.Starred):
        return [node.value]
    return None


def _snakemake_field(node: ast.Attribute | ast.Subscript, known: _Known) -> bool:
    """``snakemake.params.x``, ``sm.input[0]``...: a parameter or path of the rule."""
    chain: list[ast.Attribute | ast.Subscript] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute | ast.Subscript):
        chain.append(current)
        current = current.value
    first = chain[-1]
    return (isinstance(current, ast.Name) and current.id in known.aliases
            and isinstance(first, ast.Attribute) and first.attr in SAFE_ROOT_FIELDS
            and all(_is_safe(c.slice, known) for c in chain if isinstance(c, ast.Subscript)))


def _safe_call(node: ast.Call, known: _Known) -> bool:
    func = node.func
    if isinstance(func, ast.Name) and func.id == "len":
        return True  # a count
    args = [*node.args, *(k.value for k in node.keywords)]
    if isinstance(func, ast.Name) and func.id in SAFE_CALLS:
        return all(_is_safe(a, known) for a in args)
    if isinstance(func, ast.Attribute) and func.attr == "join" \
            and isinstance(func.value, ast.Constant):
        return all(_is_safe(a, known) for a in args)
    return False
