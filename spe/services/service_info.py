"""GA4GH service-info for WES, built from the catalog and the installed engines: a
workflow type, an engine option or a catalog entry whose engine is not installed is not
offered."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spe import __version__
from spe.domain.catalog import Catalog, WorkflowEntry

SUPPORTED_WES_VERSIONS = ["1.1.0"]


def offered(catalog: Catalog, installed: dict[str, str]) -> list[WorkflowEntry]:
    """The catalog entries whose engine is installed: the ones a submission may name."""
    return [e for e in catalog.entries() if installed.get(e.engine)]


def default_engine_parameters(entries: list[WorkflowEntry]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for entry in entries:
        for opt in entry.engine_options:
            seen.setdefault(f"{entry.engine}:{opt.name}", {
                "name": opt.name, "type": opt.type,
                "default_value": json.dumps(opt.default) if isinstance(opt.default, bool)
                else str(opt.default)})
    return [seen[k] for k in sorted(seen)]


@dataclass
class ServiceInfo:
    catalog: Catalog
    engine_versions: Callable[[], dict[str, str]]
    name: str
    organization_name: str
    organization_url: str
    auth_instructions_url: str
    started_at: datetime
    filesystem_protocols: list[str] = field(default_factory=lambda: ["dataset", "file"])
    contact_url: str = ""
    documentation_url: str = ""
    environment: str = ""

    def describe(self, state_counts: dict[str, int], base_url: str = "") -> dict[str, Any]:
        installed = {e: v for e, v in self.engine_versions().items() if v}
        entries = offered(self.catalog, installed)
        type_versions: dict[str, set[str]] = {}
        for entry in entries:
            type_versions.setdefault(entry.workflow_type, set()).add(
                entry.workflow_type_version)
        body: dict[str, Any] = {
            "id": "org.denbi.spe.wes",
            "name": self.name,
            "type": {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
            "description": "Runs allowlisted Snakemake and Nextflow workflows inside a "
                           "Secure Processing Environment; outputs leave only through "
                           "the airlock.",
            "organization": {"name": self.organization_name, "url": self.organization_url},
            "version": __version__,
            "createdAt": self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "workflow_type_versions": {t: {"workflow_type_version": sorted(v)}
                                       for t, v in sorted(type_versions.items())},
            "supported_wes_versions": SUPPORTED_WES_VERSIONS,
            "supported_filesystem_protocols": self.filesystem_protocols,
            "workflow_engine_versions": {e: {"workflow_engine_version": [v]}
                                         for e, v in sorted(installed.items())},
            "default_workflow_engine_parameters": default_engine_parameters(entries),
            "system_state_counts": state_counts,
            "auth_instructions_url": self.auth_instructions_url
            or f"{base_url}/spe/v1/auth-instructions",
            "tags": {"catalog_entries": str(len(entries)),
                     "workflow_url_forms": "<id>@<version> | <id> | sha256:<bundle digest>",
                     "extensions": "/spe/v1"},
        }
        for key, value in (("contactUrl", self.contact_url),
                           ("documentationUrl", self.documentation_url),
                           ("environment", self.environment)):
            if value:
                body[key] = value
        return body


@dataclass
class TesServiceInfo:
    """GA4GH service-info for TES: the enclave locations a task may name (``storage``) and
    the backend parameters this service reads."""

    name: str
    organization_name: str
    organization_url: str
    started_at: datetime
    backend_parameters: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "id": "org.denbi.spe.tes",
            "name": self.name,
            "type": {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"},
            "description": "Runs single tasks in reviewed HPC container images inside a "
                           "Secure Processing Environment; outputs leave only through "
                           "the airlock.",
            "organization": {"name": self.organization_name, "url": self.organization_url},
            "version": __version__,
            "createdAt": self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "storage": ["dataset://", "quarantine:///"],
            "tesResources_backend_parameters": list(self.backend_parameters),
        }
