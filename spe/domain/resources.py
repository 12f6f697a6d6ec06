"""Resources of a cluster job: the manifest's defaults, raised by the engine options the
caller may set (``cores``, ``max_cpus``), clamped to the site's limits.

Nothing here trusts a caller: options were validated against the manifest's schema at
submission, and the result never exceeds a site limit whatever the manifest says."""

from __future__ import annotations

from dataclasses import dataclass

from spe.domain.models import JSON

DEFAULTS = {"cpus": 1, "memory_mb": 1024, "time_minutes": 60}
CPU_OPTIONS = ("cores", "max_cpus")  # engine options that ask for CPUs of the head job


@dataclass(frozen=True)
class SiteLimits:
    cpus: int = 16
    memory_mb: int = 64 * 1024
    time_minutes: int = 24 * 60


def job_resources(manifest: dict[str, int], options: JSON, limits: SiteLimits) -> dict[str, int]:
    """cpus / memory_mb / time_minutes of a run's head job, each at least 1 and at most
    the site's limit."""
    wanted = {**DEFAULTS, **{k: int(v) for k, v in manifest.items() if k in DEFAULTS}}
    for name in CPU_OPTIONS:
        value = options.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            wanted["cpus"] = max(wanted["cpus"], value)
    ceiling = {"cpus": limits.cpus, "memory_mb": limits.memory_mb,
               "time_minutes": limits.time_minutes}
    return {k: max(1, min(v, ceiling[k])) for k, v in wanted.items()}


def rule_job_resources(head: dict[str, int]) -> dict[str, int]:
    """Defaults of each job an engine submits for one rule or process: the head job's
    memory and time (already within the site's limits)."""
    return {"mem_mb": head["memory_mb"], "runtime": head["time_minutes"]}
