"""Files of the BiBiGrid site kit (bibigrid/): reading a site profile, the base
configuration and the schema, resolving secret references from the environment or files,
and writing what ``spe site render`` produces."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from spe.adapters.policy import load_policy
from spe.domain.errors import InvalidRequest
from spe.domain.site_profile import SiteReport, check_profile
from spe.domain.site_render import (
    ProjectAccount,
    SecretUnavailable,
    bibigrid_configuration,
    role_variables,
)
from spe.domain.site_rules import SECRET_REF

KIT = Path(__file__).resolve().parents[2] / "bibigrid"
BASE = KIT / "bibigrid.yaml"
SCHEMA_NAME = "site-profile.schema.json"
RENDERED = "bibigrid.yaml"
ROLE_VARS = "spe_cluster.yaml"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}") from exc


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{path} is not YAML: {exc}") from exc


def load_base(path: Path) -> list[dict[str, Any]]:
    """The base BiBiGrid configuration: a list whose first entry is the master's."""
    base = load_yaml(path)
    if not isinstance(base, list) or not base or not all(isinstance(c, dict) for c in base):
        raise InvalidRequest(f"{path}: a BiBiGrid configuration is a list of mappings")
    return base


def load_schema(base: Path) -> dict[str, Any]:
    """The profile schema that lies beside the base configuration."""
    path = base.parent / SCHEMA_NAME
    try:
        schema: dict[str, Any] = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{path} is not JSON: {exc}") from exc
    return schema


def check_site_profile(profile: Path, base: Path | None = None,
                       strict: bool = False) -> SiteReport:
    """Validate ``profile`` offline against the schema and the SPE's rules."""
    base = base or BASE
    return check_profile(load_yaml(profile), load_base(base)[0], load_schema(base),
                         strict=strict)


class SecretResolver:
    """``${env:NAME}`` from ``env``; ``${file:/path}`` from that file, trailing newline cut."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def __call__(self, ref: str) -> str:
        match = SECRET_REF.match(ref)
        if match is None:  # pragma: no cover - callers pass matches only
            raise SecretUnavailable(f"{ref} is not a secret reference")
        if match["env"]:
            if match["env"] not in self.env:
                raise SecretUnavailable(f"environment variable {match['env']} is not set")
            return self.env[match["env"]]
        try:
            return Path(match["file"]).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretUnavailable(f"cannot read {match['file']}: {exc.strerror}") from exc


def _projects(policy: Path | None) -> list[ProjectAccount]:
    if policy is None:
        return []
    return [ProjectAccount(id=p.id, posix_group=p.posix_group, slurm_account=p.slurm_account)
            for p in load_policy(policy).projects.values()]


def _write(path: Path, data: Any, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Written by `spe site render`; do not edit, do not commit.\n")
        yaml.safe_dump(data, out, sort_keys=False, default_flow_style=False)


def render_site(profile: Path, out: Path, base: Path | None = None,
                env: Mapping[str, str] | None = None,
                policy: Path | None = None) -> list[Path]:
    """Write ``out/bibigrid.yaml`` (mode 0600: it holds the secrets) and the role's vars
    file ``out/spe_cluster.yaml``; ``InvalidRequest`` lists every problem."""
    base = base or BASE
    report = check_site_profile(profile, base)
    if not report.ok or report.document is None:
        raise InvalidRequest(f"{profile} is invalid (spe site check)",
                             [(p.pointer, p.message) for p in report.errors])
    resolver = SecretResolver(os.environ if env is None else env)
    config = bibigrid_configuration(report.document, load_base(base), resolver)
    variables = role_variables(report.document, _projects(policy))
    out.mkdir(parents=True, exist_ok=True)
    written = [out / RENDERED, out / ROLE_VARS]
    _write(written[0], config, 0o600)
    _write(written[1], variables, 0o644)
    return written
