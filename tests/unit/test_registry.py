"""Adapters by name (``spe.registry``): the built-in ones, a site's package found by its
entry point, and a clear error for a name nobody installed."""

from __future__ import annotations

import pytest

from spe import registry
from spe.adapters.policy import dev_policy
from spe.config import Settings
from spe.core import make_engines, make_executor


def test_the_built_in_executors_and_engines_are_registered() -> None:
    assert {"local", "slurm"} <= set(registry.names(registry.EXECUTORS))
    assert {"snakemake", "nextflow"} <= set(registry.names(registry.ENGINES))
    engines = make_engines(Settings())
    assert {name: e.name for name, e in engines.items()} == {
        "snakemake": "snakemake", "nextflow": "nextflow"}
    assert make_executor(Settings(executor="local"), dev_policy()).executor.name == "local"


def test_a_site_executor_is_found_by_its_entry_point(toy_plugin: dict[str, object]) -> None:
    assert "toy" in registry.names(registry.EXECUTORS)
    assert make_executor(Settings(executor="toy"), dev_policy()).executor.name == "toy"


def test_without_the_site_package_its_executor_is_unknown() -> None:
    assert "toy" not in registry.names(registry.EXECUTORS)
    with pytest.raises(registry.UnknownAdapter, match=r"no executor named 'toy'.*local"):
        make_executor(Settings(executor="toy"), dev_policy())


def test_an_executor_name_is_a_plain_identifier() -> None:
    with pytest.raises(ValueError, match="executor"):
        Settings(executor="../../evil")
