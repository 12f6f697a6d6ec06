"""A TES task's resources as a cluster job's: ``cpu_cores``, ``ram_gb`` and ``disk_gb``
clamped to the site's limits, and the ``backend_parameters`` this service reads (a closed
list, ``BACKEND_PARAMETERS``). Unsupported keys are dropped with a note (never stored nor
echoed), or refused when the task sets ``backend_parameters_strict``."""

from __future__ import annotations

import math
import re

from spe.domain.errors import InvalidRequest
from spe.domain.resources import DEFAULTS, SiteLimits
from spe.domain.tes import TaskResources

BACKEND_PARAMETERS = ("partition", "qos", "time")
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
TIME = re.compile(r"(?:(\d{1,3})-)?(\d{1,4}):(\d\d):(\d\d)\Z|(\d{1,7})\Z")


def _minutes(value: str) -> int | None:
    """SLURM's ``minutes`` or ``[D-]HH:MM:SS``, in whole minutes (rounded up)."""
    match = TIME.match(value)
    if match is None:
        return None
    days, hours, mins, secs, plain = match.groups()
    if plain is not None:
        return int(plain)
    return int(days or 0) * 1440 + int(hours) * 60 + int(mins) + math.ceil(int(secs) / 60)


def backend_parameters(res: TaskResources | None) -> tuple[dict[str, str], str]:
    """The parameters kept, and the note for the task's system logs ("" for none)."""
    if res is None or not res.backend_parameters:
        return {}, ""
    kept = {k: v for k, v in res.backend_parameters.items() if k in BACKEND_PARAMETERS}
    dropped = len(res.backend_parameters) - len(kept)
    errors = [(f"/resources/backend_parameters/{k}", "not a valid value")
              for k, v in kept.items()
              if (k == "time" and _minutes(v) is None) or (k != "time" and not NAME.match(v))]
    if dropped and res.backend_parameters_strict:
        errors.append(("/resources/backend_parameters",
                       f"{dropped} parameter(s) this service does not support, with "
                       "backend_parameters_strict; supported: "
                       f"{', '.join(BACKEND_PARAMETERS)}"))
    if errors:
        raise InvalidRequest("the task's backend parameters cannot be used", errors)
    note = (f"{dropped} unsupported backend parameter(s) were ignored (supported: "
            f"{', '.join(BACKEND_PARAMETERS)})") if dropped else ""
    return kept, note


def noted(res: TaskResources | None) -> str:
    """What the service says of resources it accepts but cannot honour."""
    if res is None or (not res.preemptible and not res.zones):
        return ""
    return "preemptible and zones were noted; this site has no preemptible nodes or zones"


def job_resources(res: TaskResources | None, params: dict[str, str],
                  limits: SiteLimits) -> dict[str, int]:
    """cpus / memory_mb / time_minutes (and disk_mb when asked), each within the site's
    limits."""
    wanted = dict(DEFAULTS)
    if res is not None and res.cpu_cores:
        wanted["cpus"] = res.cpu_cores
    if res is not None and res.ram_gb:
        wanted["memory_mb"] = math.ceil(res.ram_gb * 1024)
    if "time" in params:
        wanted["time_minutes"] = _minutes(params["time"]) or DEFAULTS["time_minutes"]
    ceiling = {"cpus": limits.cpus, "memory_mb": limits.memory_mb,
               "time_minutes": limits.time_minutes}
    out = {k: max(1, min(v, ceiling[k])) for k, v in wanted.items()}
    if res is not None and res.disk_gb:
        out["disk_mb"] = max(1, math.ceil(res.disk_gb * 1024))
    return out
