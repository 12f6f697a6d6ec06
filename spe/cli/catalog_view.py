"""``spe run workflows [show ID[@VERSION]]``: the catalog, and one entry's parameters
(types, defaults, bounds, descriptions from its JSON Schema), engine options and examples."""

from __future__ import annotations

import json
from typing import Any

import click

from spe.cli.client import client_for
from spe.cli.output import console, emit, output_options, show, table

_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
           ("exclusiveMaximum", "<"), ("minLength", "length >="), ("maxLength", "length <="),
           ("minItems", "items >="), ("maxItems", "items <="), ("pattern", "matches"))


def _type(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "any")
    text = " | ".join(kind) if isinstance(kind, list) else str(kind)
    if spec.get("x-spe-input"):
        text += " (dataset://ID/PATH)"
    return text


def bounds(spec: dict[str, Any]) -> str:
    """The schema's constraints of one value in words: ``>= 1, <= 4``, ``one of a, b``."""
    parts = [f"{word} {spec[key]}" for key, word in _BOUNDS if key in spec]
    if "enum" in spec:
        parts.append("one of " + ", ".join(json.dumps(v) for v in spec["enum"]))
    return ", ".join(parts)


def _default(spec: dict[str, Any]) -> str:
    return json.dumps(spec["default"]) if "default" in spec else ""


def _params(schema: dict[str, Any]) -> None:
    required = set(schema.get("required") or [])
    grid = table("parameter", "type", "default", "bounds", "description",
                 title="parameters (-p NAME=VALUE)")
    for name, raw in (schema.get("properties") or {}).items():
        spec = raw if isinstance(raw, dict) else {}
        label = f"{name} (required)" if name in required else name
        grid.add_row(label, _type(spec), _default(spec), bounds(spec),
                     " ".join(str(spec.get("description", "")).split()))
    show(grid)


def _engine_options(options: list[dict[str, Any]]) -> None:
    grid = table("option", "type", "default", "bounds", "description",
                 title="engine options (-e NAME=VALUE)")
    for o in options:
        grid.add_row(o["name"], str(o.get("type", "")), _default(o),
                     bounds({**o, **({"enum": o["enum"]} if o.get("enum") else {})}),
                     " ".join(str(o.get("description", "")).split()))
    show(grid)


def render_entry(entry: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]{entry['ref']}[/bold]: {entry.get('name', '')} "
              f"({entry['workflow_type']} {entry['workflow_type_version']}, "
              f"{entry.get('workflow_engine', '')})", soft_wrap=True)
    out.print(f"bundle {entry['bundle_digest']}", soft_wrap=True)
    if entry.get("description"):
        out.print(" ".join(entry["description"].split()))
    _params(entry.get("params_schema") or {})
    if entry.get("engine_options"):
        _engine_options(entry["engine_options"])
    if entry.get("outputs"):
        out.print("outputs: " + ", ".join(str(o) for o in entry["outputs"]), soft_wrap=True)
    for ex in entry.get("examples") or []:
        args = " ".join(f"-p {k}={json.dumps(v)}" for k, v in (ex.get("params") or {}).items())
        out.print(f"example {ex.get('name', '')}: spe run submit {entry['ref']} --example "
                  f"{ex.get('name', '')}  # = {args or 'no parameters'}", soft_wrap=True,
                  markup=False)


@click.group("workflows", invoke_without_command=True)
@output_options
@click.pass_context
def workflows(ctx: click.Context) -> None:
    """What you may run: the catalog (`show ID[@VERSION]` for one entry)."""
    if ctx.invoked_subcommand is not None:
        return
    entries = client_for(ctx).workflows()

    def render() -> None:
        grid = table("ref", "type", "name", "examples")
        for e in entries:
            grid.add_row(e["ref"], f"{e['workflow_type']} {e['workflow_type_version']}",
                         e.get("name", ""),
                         ", ".join(x.get("name", "") for x in e.get("examples") or []))
        show(grid)

    emit({"workflows": entries}, render)


@workflows.command("show")
@click.argument("ref", metavar="ID[@VERSION]")
@output_options
@click.pass_context
def show_workflow(ctx: click.Context, ref: str) -> None:
    """One catalog entry: parameters, engine options, examples."""
    entry = client_for(ctx).workflow(ref)
    emit(entry, lambda: render_entry(entry))
