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


def ga4gh_service(provider: Any, artifact: str, description: str) -> dict[str, Any]:
    """The GA4GH ``Service`` fields both APIs share, from ``provider``'s name,
    organization, start time and optional contact, documentation and environment."""
    body: dict[str, Any] = {
        "id": f"org.denbi.spe.{artifact}",
        "name": provider.name,
        "type": {"group": "org.ga4gh", "artifact": artifact, "version": "1.1.0"},
        "description": description,
        "organization": {"name": provider.organization_name,
                         "url": provider.organization_url},
        "version": __version__,
        "createdAt": provider.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for key, value in (("contactUrl", provider.contact_url),
                       ("documentationUrl", provider.documentation_url),
                       ("environment", provider.environment)):
        if value:
            body[key] = value
    return body


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
        return ga4gh_service(self, "wes", "Runs allowlisted Snakemake and Nextflow workflows "
                             "inside a Secure Processing Environment; outputs leave only "
                             "through the airlock.") | {
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


@dataclass
class TesServiceInfo:
    """GA4GH service-info for TES: the enclave locations a task may name (``storage``) and
    the backend parameters this service reads."""

    name: str
    organization_name: str
    organization_url: str
    started_at: datetime
    backend_parameters: tuple[str, ...]
    contact_url: str = ""
    documentation_url: str = ""
    environment: str = ""

    def describe(self) -> dict[str, Any]:
        """TES clients read ``contactUrl`` as an http(s) URL: a mailto: one is left out."""
        body = ga4gh_service(self, "tes", "Runs single tasks in reviewed HPC container "
                             "images inside a Secure Processing Environment; outputs leave "
                             "only through the airlock.")
        if not body.get("contactUrl", "https://").startswith(("https://", "http://")):
            del body["contactUrl"]
        return body | {
            "storage": ["dataset://", "quarantine:///"],
            "tesResources_backend_parameters": list(self.backend_parameters),
        }
