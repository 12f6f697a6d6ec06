"""Adapters chosen by name: executors, workflow engines and object stores come from Python
entry points, as JupyterHub spawners and Snakemake executor plugins do, so a site adds a
PBS executor or another store by installing a package, without editing ``spe/``.

| group             | named by                          | the entry point is a factory   |
|-------------------|-----------------------------------|--------------------------------|
| ``spe.executors`` | ``SPE_EXECUTOR``                  | ``(settings, policy)``, giving |
|                   |                                   | an ``ExecutorChoice``          |
| ``spe.engines``   | a catalog entry's engine          | ``(settings)``, giving a       |
|                   |                                   | ``WorkflowEngine``             |
| ``spe.stores``    | a location's scheme (``x://...``) | ``(location, settings)``,      |
|                   |                                   | giving an ``ObjectStore``      |

The built-in adapters are listed in ``pyproject.toml`` and also here, so a source checkout
that is not installed still has them; an installed entry point of the same name wins."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

EXECUTORS, ENGINES, STORES = "spe.executors", "spe.engines", "spe.stores"
BUILT_IN: dict[str, dict[str, str]] = {
    EXECUTORS: {"local": "spe.execution_wiring:local_executor",
                "slurm": "spe.execution_wiring:slurm_executor"},
    ENGINES: {"snakemake": "spe.execution_wiring:snakemake_engine",
              "nextflow": "spe.execution_wiring:nextflow_engine"},
    STORES: {},
}


class UnknownAdapter(ValueError):
    """No adapter of that name is installed."""


def _targets(group: str) -> dict[str, str]:
    found = dict(BUILT_IN.get(group, {}))
    found.update({ep.name: ep.value for ep in entry_points(group=group)})
    return found


def names(group: str) -> list[str]:
    return sorted(_targets(group))


def load(group: str, name: str) -> Callable[..., Any]:
    """The factory registered as ``name`` in ``group``."""
    target = _targets(group).get(name)
    if target is None:
        raise UnknownAdapter(f"no {group.removeprefix('spe.')[:-1]} named {name!r} is "
                             f"installed (installed: {', '.join(names(group)) or 'none'})")
    module, _, attr = target.partition(":")
    factory = importlib.import_module(module)
    for part in attr.split("."):
        factory = getattr(factory, part)
    if not callable(factory):
        raise UnknownAdapter(f"{group} {name!r}: {target} is not callable")
    return factory
