"""The checks behind ``GET /readyz``: each asks one system the deployment uses whether it
answers (the database; Redis with Celery; the SLURM controller with the SLURM executor;
the storage zones; the identity provider's discovery document with OIDC). A check returns
a short detail of its own words (never an exception's text, which may name a URL with a
password); slow or remote checks are cached for a few seconds, so a probe every second
does not become a load on the controller or the identity provider."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import Engine, text

from spe.domain.ports import ObjectStore

PROBE_KEY = ".spe-readiness-probe"  # stat'ed, never written: a missing key means reachable


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str = ""
    seconds: float = 0.0
    cached: bool = False

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4),
                "cached": self.cached}


Probe = Callable[[], tuple[bool, str]]


@dataclass
class Check:
    """A named probe; its result is reused for ``cache_seconds`` (0: never)."""

    name: str
    probe: Probe
    cache_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _last: tuple[float, Result] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> Result:
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last[0] < self.cache_seconds:
                kept = self._last[1]
                return Result(kept.ok, kept.detail, kept.seconds, cached=True)
            began = time.monotonic()
            try:
                ok, detail = self.probe()
            except Exception as exc:  # any failure of the probe means not ready
                ok, detail = False, f"failed ({type(exc).__name__})"
            result = Result(ok, detail, time.monotonic() - began)
            self._last = (now, result)
            return result


def run_checks(checks: Iterable[Check]) -> dict[str, Result]:
    return {check.name: check.run() for check in checks}


def database(db: Engine) -> Probe:
    def probe() -> tuple[bool, str]:
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True, "SELECT 1 answered"

    return probe


def broker(ready: Callable[[], bool]) -> Probe:
    """Redis (Celery's broker): ``ready`` pings it within the broker timeout."""
    return lambda: (True, "ping answered") if ready() else (False, "no answer to ping")


def slurm_controller(scontrol: Path, timeout: float) -> Probe:
    """``scontrol ping``: exit 0 and an ``UP`` controller."""

    def probe() -> tuple[bool, str]:
        try:
            proc = subprocess.run([str(scontrol), "ping"], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False, f"scontrol ping timed out after {timeout:g} s"
        up = proc.returncode == 0 and " is UP" in proc.stdout
        return up, "controller is UP" if up else f"scontrol ping exit {proc.returncode}"

    return probe


def storage(locations: Callable[[], Iterable[str]],
            open_store: Callable[[str], ObjectStore]) -> Probe:
    """Every zone location (quarantine, outbox): a directory the service may write, or a
    store that answers a ``stat``."""

    def probe() -> tuple[bool, str]:
        bad: list[str] = []
        checked = 0
        for location in sorted(set(locations())):
            checked += 1
            if "://" not in location:
                path = Path(location)
                if not (path.is_dir() and os.access(path, os.W_OK | os.X_OK)):
                    bad.append(location)
                continue
            try:
                open_store(location).stat(PROBE_KEY)
            except Exception:  # unreachable, denied, or not configured
                bad.append(location.split("://", 1)[0] + "://...")
        if bad:
            return False, f"{len(bad)} of {checked} locations unreachable: " \
                f"{', '.join(bad[:5])}"
        return True, f"{checked} locations reachable"

    return probe


def discovery(issuer: str, timeout: float) -> Probe:
    """The identity provider's ``/.well-known/openid-configuration`` names ``issuer``."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"

    def probe() -> tuple[bool, str]:
        try:
            resp = requests.get(url, timeout=timeout)
        except requests.RequestException as exc:
            return False, f"discovery document unreachable ({type(exc).__name__})"
        if resp.status_code != 200:
            return False, f"discovery document answered {resp.status_code}"
        try:
            named = resp.json().get("issuer")
        except ValueError:
            return False, "discovery document is not JSON"
        if str(named).rstrip("/") != issuer.rstrip("/"):
            return False, "discovery document names another issuer"
        return True, "discovery document answered"

    return probe
