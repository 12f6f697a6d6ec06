"""With the SLURM executor, `/readyz` asks the real controller (`scontrol ping`) and says
it is UP, beside the database and storage checks."""

from __future__ import annotations

import requests

from tests.helpers import Server


def test_readyz_checks_the_slurm_controller(slurm_api_server: Server) -> None:
    body = requests.get(slurm_api_server.url + "/readyz", timeout=30).json()
    assert body["status"] == "ready", body
    assert body["checks"]["slurm"] == {**body["checks"]["slurm"], "ok": True,
                                       "detail": "controller is UP"}
    assert {"database", "storage", "slurm"} <= set(body["checks"])
