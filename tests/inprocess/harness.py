"""The service built in this process (``create_app``) on SQLite, with the fake executor
(``tests/fakes.py``) in place of local processes and a stand-in engine: the real API, the
real runs, data and airlock services, no `spe serve` subprocess, no engine, no external
system. ``tests/inprocess/conftest.py`` makes one per test (``spe``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spe.adapters.policy import dev_entitlement
from spe.app import Service, create_app
from spe.config import Settings
from spe.domain.ports import ExecutorChoice
from tests.fakes import FakeExecutor, ResultsEngine
from tests.helpers import FINAL, WES

GROUPS = {  # the embedded default policy: project `demo`, its reviewers, an operator
    "alice": ("spe:demo",), "bob": ("spe:demo",),
    "rita": ("spe:demo", "spe:demo:role=reviewer"),
    "rex": ("spe:demo", "spe:demo:role=reviewer"),
    "olga": ("spe:operators",), "nobody": (),
}


@dataclass
class InProcess:
    service: Service
    client: Any  # starlette's TestClient, as connexion returns it
    executor: FakeExecutor

    @property
    def home(self) -> Path:
        return self.service.settings.home

    def headers(self, user: str, **extra: str) -> dict[str, str]:
        issuer = self.service.dev_issuer
        assert issuer is not None
        claims = {"eduperson_entitlement": [dev_entitlement(g) for g in GROUPS[user]]}
        return {"Authorization": f"Bearer {issuer.mint(user, 'spe', extra_claims=claims)}",
                **extra}

    def get(self, user: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(user, **kw.pop("headers", {})),
                               **kw)

    def post(self, user: str, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self.headers(user, **kw.pop("headers", {})),
                                **kw)

    def submit(self, user: str, workflow_url: str, params: dict[str, Any] | None = None,
               **headers: str) -> Any:
        form = {"workflow_url": workflow_url, "workflow_type": "SMK",
                "workflow_type_version": "9", "workflow_params": json.dumps(params or {})}
        return self.post(user, f"{WES}/runs", files=[(k, (None, v)) for k, v in form.items()],
                         headers=headers)

    def run_id(self, resp: Any) -> str:
        assert resp.status_code == 200, resp.text
        return str(resp.json()["run_id"])

    def wait(self, user: str, run_id: str, states: set[str] = FINAL,
             timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            resp = self.get(user, f"{WES}/runs/{run_id}/status")
            assert resp.status_code == 200, resp.text
            state = resp.json()["state"]
            if state in states:
                return str(state)
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} still {state} after {timeout} s")


def in_process(home: Path, catalog: Path, **settings_extra: Any) -> Iterator[InProcess]:
    settings = Settings(home=home, catalog_dir=catalog, reconcile_seconds=0.05,
                        cancel_grace_seconds=0, **settings_extra)
    executor = FakeExecutor()  # the fake machine instead of local processes
    service = create_app(settings, choice=ExecutorChoice(executor))
    service.execution.engines["snakemake"] = ResultsEngine()
    with service.app.test_client() as client:  # runs the lifespan: issuer, reconciler
        yield InProcess(service, client, executor)
