"""Test helpers: a real `spe serve` process and a small WES client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from spe.adapters.auth.dev_issuer import DevIssuer
from spe.adapters.policy import dev_entitlement
from tests.tiers import starting

ROOT = Path(__file__).resolve().parent.parent
FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
WES = "/ga4gh/wes/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_catalog(dest: Path) -> Path:
    """The shipped catalog plus the test-only entries, copied side by side."""
    shutil.copytree(ROOT / "workflows", dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
    shutil.copytree(ROOT / "tests/fixtures/catalog", dest, dirs_exist_ok=True)
    return dest


@dataclass
class Api:
    base: str
    token: str = ""
    verify: str | bool = True  # a CA bundle for https (tests/tls_ca.py)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.base + path, headers=self._headers(kw.pop("headers", None)),
                            timeout=30, verify=self.verify, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self.base + path, headers=self._headers(kw.pop("headers", None)),
                             timeout=60, verify=self.verify, **kw)

    def submit(self, workflow_url: str, params: dict[str, Any] | None = None, *,
               files: list[tuple[str, tuple[str | None, Any]]] | None = None,
               headers: dict[str, str] | None = None, **fields: Any) -> requests.Response:
        form: dict[str, Any] = {"workflow_url": workflow_url, "workflow_type": "SMK",
                                "workflow_type_version": "9"}
        if params is not None:
            form["workflow_params"] = json.dumps(params)
        for key, value in fields.items():
            form[key] = json.dumps(value) if isinstance(value, dict) else value
        parts = [(k, (None, str(v))) for k, v in form.items() if v is not None]
        return self.post(f"{WES}/runs", files=parts + (files or []), headers=headers)

    def run_id(self, resp: requests.Response) -> str:
        assert resp.status_code == 200, resp.text
        return str(resp.json()["run_id"])

    def wait(self, run_id: str, states: set[str] = FINAL, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            resp = self.get(f"{WES}/runs/{run_id}/status")
            assert resp.status_code == 200, resp.text
            state = resp.json()["state"]
            if state in states:
                return str(state)
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} still {state} after {timeout} s")


@dataclass
class Server:
    home: Path
    catalog: Path
    port: int = field(default_factory=free_port)
    env_extra: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    ca_file: Path | None = None  # set: the server speaks https (--tls-cert in serve_args)
    serve_args: tuple[str, ...] = ()  # more options of `spe serve`
    # what start() waits for: /healthz where a test starts it with a dependency down
    ready_path: str = "/readyz"

    @property
    def url(self) -> str:
        if self.ca_file is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    @property
    def verify(self) -> str | bool:
        return str(self.ca_file) if self.ca_file is not None else True

    def env(self) -> dict[str, str]:
        return {**os.environ, "SPE_HOME": str(self.home), "SPE_CATALOG_DIR": str(self.catalog),
                "SPE_RECONCILE_SECONDS": "0.3", "SPE_CANCEL_GRACE_SECONDS": "5",
                "SPE_JWKS_MIN_REFRESH_SECONDS": "1", **self.env_extra}

    def start(self, timeout: float = 60) -> Server:
        starting("a `spe serve` subprocess")
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.chmod(self.home.stat().st_mode & ~0o066)  # `spe serve` refuses o+r, o+w
        log = os.fdopen(os.open(self.home / "server.log",
                                os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spe.cli.main", "serve", "--port", str(self.port),
             *self.serve_args],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=1,
                                verify=self.verify).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout} s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, n: int = 4000) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def token(self, user: str, groups: tuple[str, ...] = ("spe:demo",), **kw: Any) -> str:
        """A development token; by default a member of the built-in `demo` project."""
        audience = kw.pop("audience", "spe")
        extra = {"eduperson_entitlement": [dev_entitlement(g) for g in groups],
                 **kw.pop("extra_claims", {})}
        return DevIssuer(self.home).mint(user, audience, extra_claims=extra, **kw)

    def api(self, user: str | None = None) -> Api:
        return Api(self.url, self.token(user) if user else "", self.verify)


def assert_no_server_error(document: Path, url: str, token: str, cwd: Path,
                           examples: int = 30) -> None:
    """A bounded, deterministic schemathesis run of ``document`` against ``url``: every
    generated request (with ``token``) must get anything but a 5xx."""
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [exe, "run", str(document), "--url", url, "-H", f"Authorization: Bearer {token}",
         "--checks", "not_a_server_error", "--max-examples", str(examples),
         "--generation-deterministic", "--phases", "examples,coverage,fuzzing",
         "--workers", "1", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=900, check=False, cwd=cwd)
    tail = result.stdout[-3000:]
    assert result.returncode == 0, tail
    assert "generated" in tail and "Server error" not in tail
