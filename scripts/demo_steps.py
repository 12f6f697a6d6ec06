# ruff: noqa: T201  # a script whose job is to print for the person running the demo
"""Steps of scripts/demo.sh that ask the API what the run and the release request are:
which outputs the run made, what data it read, the automatic checks of a request, and its
Five Safes RO-Crate. Reads SPE_URL and SPE_TOKEN like the `spe` CLI.

Usage: demo_steps.py port-free PORT | outputs RUN_ID | inputs RUN_ID
       | checks REQUEST_ID | crate REQUEST_ID DOWNLOAD_DIR"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import requests

TIMEOUT = 30
CHECKING = ("SUBMITTED", "CHECKING")


def _get(path: str, **params: Any) -> Any:
    resp = requests.get(os.environ["SPE_URL"] + path, params=params, timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {os.environ['SPE_TOKEN']}"})
    if resp.status_code != 200:
        sys.exit(f"demo: GET {path}: HTTP {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def port_free(port: str) -> int:
    """0 if nothing listens on 127.0.0.1:PORT and it can be bound, else 1 with a message."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(port)))
        except OSError as exc:
            print(f"demo: port {port} is busy ({exc.strerror}); another server may be "
                  "running there. Stop it, or choose another port: SPE_PORT=8081 "
                  "scripts/demo.sh", file=sys.stderr)
            return 1
    return 0


def outputs(run_id: str) -> int:
    """The run's outputs a requester may ask to release, one path a line (the engine's
    own logs under _logs/ stay out: they are outputs too, but not the demo's result)."""
    for o in _get(f"/spe/v1/runs/{run_id}/outputs")["outputs"]:
        if not o["path"].startswith("_logs/"):
            print(o["path"])
    return 0


def inputs(run_id: str) -> int:
    """What the run read: its parameters, and each dataset it may use with its files."""
    run = _get(f"/ga4gh/wes/v1/runs/{run_id}")
    params = run["request"].get("workflow_params") or {}
    print(f"parameters of {run['request']['workflow_url']}: {json.dumps(params)}")
    refs = [v for v in params.values() if isinstance(v, str) and v.startswith("dataset://")]
    for ref in refs:
        print(f"  reads {ref}")
    if not refs:
        print("  (no dataset reference: the workflow reads the data shipped in its bundle)")
    used = {ref[len("dataset://"):].split("/", 1)[0] for ref in refs}
    for ds in _get("/spe/v1/datasets")["datasets"]:
        if ds["id"] in used:
            print(f"  dataset {ds['id']} ({ds['kind']}, granted by "
                  f"{', '.join(ds['granted_by'])}): {ds['description']}")
    return 0


def checks(request_id: str, wait: float = 120.0) -> int:
    """The automatic check results of a request, once they have run."""
    deadline = time.monotonic() + wait
    body = _get(f"/spe/v1/release-requests/{request_id}")
    while body["state"] in CHECKING and time.monotonic() < deadline:
        time.sleep(0.5)
        body = _get(f"/spe/v1/release-requests/{request_id}")
    print(f"release request {request_id}: {body['state']}")
    for f in sorted(body["findings"], key=lambda x: (x["path"], x["check"])):
        print(f"  {f['severity']:<4}  {f['check']:<14} {f['path'] or '(request)'}: "
              f"{f['message']}")
    return 0 if body["state"] == "IN_REVIEW" else 1


def crate(request_id: str, dest: str) -> int:
    """What the request's Five Safes RO-Crate says; `spe release download` wrote it
    beside the files."""
    target = Path(dest) / request_id / "ro-crate-metadata.json"
    if not target.is_file():
        print(f"demo: no RO-Crate at {target}", file=sys.stderr)
        return 1
    body = json.loads(target.read_text(encoding="utf-8"))
    print(f"the Five Safes RO-Crate: {target}")
    graph = body.get("@graph", [])

    def named(kind: str) -> list[str]:
        return [str(e.get("name", e["@id"])) for e in graph
                if kind in (e["@type"] if isinstance(e.get("@type"), list) else [e.get("@type")])]

    print(f"  run: {', '.join(named('CreateAction'))}; workflow: "
          f"{', '.join(named('ComputationalWorkflow'))}")
    print(f"  datasets: {', '.join(named('Dataset')[1:]) or '(none)'}; "
          f"files: {len(named('File'))}; checks and reviews: {len(named('AssessAction'))}; "
          f"release: {', '.join(named('UpdateAction'))}")
    return 0


def main(argv: list[str]) -> int:
    steps = {"port-free": port_free, "outputs": outputs, "inputs": inputs,
             "checks": checks, "crate": crate}
    if not argv or argv[0] not in steps:
        print(__doc__, file=sys.stderr)
        return 2
    return int(steps[argv[0]](*argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
