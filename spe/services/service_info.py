"""GA4GH service-info for WES, built from the catalog and the installed engines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spe import __version__
from spe.domain.catalog import Catalog

SUPPORTED_WES_VERSIONS = ["1.1.0"]


@dataclass
class ServiceInfo:
    catalog: Catalog
    engine_versions: Callable[[], dict[str, str]]
    name: str
    organization_name: str
    organization_url: str
    auth_instructions_url: str
    started_at: datetime
    default_engine_parameters: list[dict[str, str]]

    def describe(self, state_counts: dict[str, int], base_url: str = "") -> dict[str, Any]:
        installed = self.engine_versions()
        type_versions: dict[str, set[str]] = {}
        for entry in self.catalog.entries():
            if installed.get(entry.engine):
                type_versions.setdefault(entry.workflow_type, set()).add(
                    entry.workflow_type_version)
        return {
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
            "supported_filesystem_protocols": ["file"],
            "workflow_engine_versions": {e: {"workflow_engine_version": [v]}
                                         for e, v in sorted(installed.items()) if v},
            "default_workflow_engine_parameters": self.default_engine_parameters,
            "system_state_counts": state_counts,
            "auth_instructions_url": self.auth_instructions_url
            or f"{base_url}/spe/v1/auth-instructions",
            "tags": {"catalog_entries": str(len(self.catalog.entries())),
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
