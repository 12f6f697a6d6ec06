"""charts/spe's values: the schema describes every value, the settings it passes exist in
spe/config.py, and the examples validate (no Helm needed: the fast tier)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
import yaml

from spe.config import Settings
from tests.chart.helm import CHART, EXAMPLES

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def undescribed(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Paths in ``value`` that ``schema`` has no property (with a description) for."""
    if not isinstance(value, dict) or "properties" not in schema:
        return []
    out = []
    for key, sub in value.items():
        prop = schema["properties"].get(key)
        if prop is None:
            out.append(f"{where}/{key}")
            continue
        if "description" not in prop and prop.get("type") != "object":
            out.append(f"{where}/{key} (no description)")
        out += undescribed(sub, prop, f"{where}/{key}")
    return out


def test_every_value_is_in_the_schema_and_described() -> None:
    assert undescribed(VALUES, SCHEMA) == []


def test_the_schema_forbids_unknown_keys_everywhere() -> None:
    def open_objects(schema: dict[str, Any], where: str = "") -> list[str]:
        found = []
        if schema.get("type") == "object" and "properties" in schema \
                and schema.get("additionalProperties") is not False:
            found.append(where or "/")
        for key, sub in schema.get("properties", {}).items():
            found += open_objects(sub, f"{where}/{key}")
        return found
    assert open_objects(SCHEMA) == []


@pytest.mark.parametrize("path", [CHART / "values.yaml", *EXAMPLES], ids=lambda p: p.name)
def test_values_and_examples_validate(path: Any) -> None:
    jsonschema.validate(merged(VALUES, yaml.safe_load(path.read_text())), SCHEMA)


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``helm -f``: maps merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both else value
    return out


def test_every_config_value_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    assert set(VALUES["config"]) <= fields, set(VALUES["config"]) - fields
    assert set(SCHEMA["properties"]["config"]["properties"]) <= fields


def test_the_chart_sets_only_real_settings() -> None:
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    names = {word.split(":")[0] for word in text.split() if word.startswith("SPE_")
             and word.endswith(":")}
    fields = {f"SPE_{name.upper()}" for name in Settings.model_fields}
    assert names and names <= fields, names - fields


def test_yamllint_passes_on_the_values_and_examples() -> None:
    pytest.importorskip("yamllint")
    proc = subprocess.run([sys.executable, "-m", "yamllint", "-s", "-d",
                           "{extends: default, rules: {line-length: {max: 100}, "
                           "document-start: disable, comments: {min-spaces-from-content: 1}, "
                           "braces: {max-spaces-inside: 1}}}",
                           str(CHART / "values.yaml"), str(CHART / "Chart.yaml"),
                           *map(str, EXAMPLES)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_ingress_body_limit_matches_the_service_limit() -> None:
    size = VALUES["ingress"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m")
    assert int(size[:-1]) * 2**20 == VALUES["config"]["max_request_bytes"]
    assert VALUES["config"]["max_request_bytes"] == Settings.model_fields[
        "max_request_bytes"].default
