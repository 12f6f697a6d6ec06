"""The request path against the framework floor, measured in one run.

Servers, each in its own process (spawn) under the same uvicorn settings:

- **floor**: a minimal Starlette app serving the same JSON documents as spe (the
  service-info body spe returned at start, and ``{"status": "ok"}``), encoded per request;
- **spe**: the real app (``create_app``, execution stubbed, SQLite), with a token minted
  by the dev issuer and one stored run for ``GET /runs/{id}/status``;
- **connexion AsyncApp / FlaskApp**: a one-operation OpenAPI document serving the same
  service-info dict, to compare the two connexion stacks without spe's code: FlaskApp with
  connexion's default encoder (``indent=2``), FlaskApp with spe's ``FastJsonifier``, and
  AsyncApp (native Starlette, no WSGI bridge).

One client, ``http.client`` keep-alive connections (cheap, so the server dominates), the
targets interleaved round by round so drift hits each alike. Prints p50/p95 and the ratio
to the floor's p50.

``--compare URL --token-cmd CMD`` runs the same reads (service-info, status with a
token, the first page of 100 runs) against any WES server whose base URL (ending in
``/ga4gh/wes/v1``) is given, with the token printed by CMD, beside spe in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import uvicorn
from _common import (
    WES,
    CpuWatch,
    InProcessServer,
    build_catalog,
    free_port,
    percentile,
    print_machine,
    print_table,
    scratch_dir,
    submit_parts,
)

SPEC = """
openapi: 3.0.3
info: {title: floor, version: "1"}
paths:
  /service-info:
    get:
      operationId: bench_request.service_info
      responses:
        "200":
          description: ok
          content: {application/json: {schema: {type: object}}}
"""


# -- the comparison servers (run in child processes) -------------------------------------

def _starlette_app(info: dict[str, Any]) -> Any:
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.responses import JSONResponse  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    async def healthz(_request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def service_info(_request: Any) -> JSONResponse:
        return JSONResponse(info)

    return Starlette(routes=[Route("/healthz", healthz),
                             Route(WES + "/service-info", service_info)])


_INFO: dict[str, Any] = {}


def service_info() -> dict[str, Any]:
    """The one operation of SPEC (connexion resolves it by its operationId)."""
    return _INFO


def _connexion_app(kind: str, info: dict[str, Any]) -> Any:
    import sys  # noqa: PLC0415

    from connexion import AsyncApp, FlaskApp  # noqa: PLC0415

    from spe.api.jsonify import FastJsonifier  # noqa: PLC0415

    _INFO.update(info)
    sys.modules.setdefault("bench_request", sys.modules[__name__])
    spec_dir = Path(tempfile.mkdtemp(prefix="spe-bench-spec-"))
    (spec_dir / "floor.yaml").write_text(SPEC)
    if kind == "async":
        app: Any = AsyncApp(__name__, specification_dir=str(spec_dir))
    elif kind == "flask-default":
        app = FlaskApp(__name__, specification_dir=str(spec_dir))
    else:
        app = FlaskApp(__name__, specification_dir=str(spec_dir), jsonifier=FastJsonifier())
    app.add_api("floor.yaml", base_path=WES)
    return app


def _serve(kind: str, info: dict[str, Any], port: int) -> None:
    app = _starlette_app(info) if kind == "starlette" else _connexion_app(kind, info)
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                  access_log=False)).run()


@dataclass
class Child:
    kind: str
    info: dict[str, Any]
    port: int = field(default_factory=free_port)
    proc: Any = None

    def __enter__(self) -> Child:
        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(target=_serve, args=(self.kind, self.info, self.port),
                                daemon=True)
        self.proc.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}{WES}/service-info",
                                timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} server did not start")

    def __exit__(self, *_exc: object) -> None:
        self.proc.terminate()
        self.proc.join(timeout=10)


# -- the client ---------------------------------------------------------------------------

@dataclass
class Target:
    label: str
    url: str  # absolute
    token: str = ""
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    _conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            parts = urlsplit(self.url)
            cls = (http.client.HTTPSConnection if parts.scheme == "https"
                   else http.client.HTTPConnection)
            self._conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        return self._conn

    def once(self) -> float:
        try:
            return self._once()
        except (http.client.RemoteDisconnected, ConnectionError):
            # the server closed an idle keep-alive connection (uvicorn: after 5 s) while
            # the other targets ran: reconnect, and time the request again
            self.close()
            self._conn = None
            self._connection().connect()
            return self._once()

    def _once(self) -> float:
        parts = urlsplit(self.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        conn = self._connection()
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            self.errors += 1
        if resp.getheader("connection", "").lower() == "close":
            conn.close()
            self._conn = None
        return elapsed

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def measure(targets: list[Target], rounds: int, per_round: int, warmup: int) -> None:
    for target in targets:
        for _ in range(warmup):
            target.once()
    for _ in range(rounds):
        for target in targets:
            target.once()  # untimed: reopens a connection the server closed meanwhile
            target.latencies.extend(target.once() for _ in range(per_round))
    for target in targets:
        target.close()


def report(targets: list[Target], floors: dict[str, float]) -> None:
    rows = []
    for t in targets:
        p50 = percentile(t.latencies, 50) * 1000
        group = t.label.split(":", 1)[0]
        floor = floors.get(group)
        rows.append([t.label, len(t.latencies), t.errors, p50,
                     percentile(t.latencies, 95) * 1000,
                     len(t.latencies) / sum(t.latencies),
                     f"{p50 / floor:.2f}x" if floor else "-"])
    print_table(["target", "n", "errors", "p50 ms", "p95 ms", "req/s (1 client)",
                 "p50 / floor p50"], rows)


# -- the spe server, with a token and a run -----------------------------------------------

def _spe_with_run(tmp: Path) -> tuple[InProcessServer, str, str]:
    catalog = build_catalog(tmp / "catalog")
    server = InProcessServer(tmp / "home", catalog).start()
    token = server.token()
    resp = requests.post(server.url + WES + "/runs", files=submit_parts(
        "sleepy", json.dumps({"seconds": 0})), headers={"Authorization": f"Bearer {token}"},
        timeout=30)
    resp.raise_for_status()
    return server, token, resp.json()["run_id"]


def _compare_targets(base: str, token_cmd: str) -> list[Target]:
    """The reads of the other server: its first listed run gives the status target (a
    server without runs is measured without it). No ``token_cmd``: no token sent."""
    token = subprocess.run(shlex.split(token_cmd), capture_output=True, text=True,
                           check=True, timeout=60).stdout.strip() if token_cmd else ""
    base = base.rstrip("/")
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    listed = requests.get(base + "/runs?page_size=1", headers=auth, timeout=30)
    listed.raise_for_status()
    runs = listed.json().get("runs") or []
    total = len(requests.get(base + "/runs?page_size=100", headers=auth, timeout=30)
                .json().get("runs") or [])
    targets = [Target("other:service-info", base + "/service-info"),
               Target(f"other:runs page 100, {total} listed", base + "/runs?page_size=100",
                      token)]
    if runs:
        targets.append(Target("other:status", f"{base}/runs/{runs[0]['run_id']}/status",
                              token))
    return targets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--no-connexion", action="store_true",
                        help="leave out the one-operation connexion apps")
    parser.add_argument("--compare", metavar="URL", default="",
                        help="another WES server's base URL (…/ga4gh/wes/v1)")
    parser.add_argument("--token-cmd", default="",
                        help="command printing a bearer token for --compare (none: the "
                             "other server is called without a token)")
    args = parser.parse_args(argv)
    print_machine("request path against the framework floor")
    with scratch_dir("spe-bench-request-") as tmp:
        server, token, run_id = _spe_with_run(tmp)
        try:
            spe = server.url
            info = requests.get(spe + WES + "/service-info", timeout=10).json()
            kinds = ["starlette"] + ([] if args.no_connexion
                                     else ["async", "flask-default", "flask-fast"])
            children = [Child(k, info).__enter__() for k in kinds]
            try:
                floor = f"http://127.0.0.1:{children[0].port}"
                targets = [
                    Target("floor:healthz", floor + "/healthz"),
                    Target("spe:healthz", spe + "/healthz"),
                    Target("floor:service-info", floor + WES + "/service-info"),
                    Target("spe:service-info", spe + WES + "/service-info"),
                    Target("spe:status with token", f"{spe}{WES}/runs/{run_id}/status", token),
                    Target("spe:service-info with token", spe + WES + "/service-info", token),
                    # one stored run: the request path of a listing (bench_list: many runs)
                    Target("spe:runs page 100, 1 run", f"{spe}{WES}/runs?page_size=100",
                           token),
                ]
                targets += [Target(f"connexion:{c.kind} service-info",
                                   f"http://127.0.0.1:{c.port}{WES}/service-info")
                            for c in children[1:]]
                if args.compare:
                    targets += _compare_targets(args.compare, args.token_cmd)
                watch = CpuWatch()
                measure(targets, args.rounds, args.per_round, args.warmup)
                print(watch.report() + "\n")
            finally:
                for child in children:
                    child.__exit__()
        finally:
            server.stop()
    by_label: dict[str, float] = {t.label: percentile(t.latencies, 50) * 1000
                                  for t in targets}
    floors = {"floor": by_label["floor:service-info"],
              "spe": by_label["floor:service-info"],
              "connexion": by_label["floor:service-info"],
              "other": by_label["floor:service-info"]}
    report(targets, floors)
    _ratios(by_label)


def _ratios(p50: dict[str, float]) -> None:
    pairs: list[tuple[str, str, str]] = [
        ("/healthz: spe / floor", "spe:healthz", "floor:healthz"),
        ("service-info: spe / floor", "spe:service-info", "floor:service-info"),
        ("service-info: AsyncApp / floor", "connexion:async service-info",
         "floor:service-info"),
        ("service-info: FlaskApp default / floor", "connexion:flask-default service-info",
         "floor:service-info"),
        ("service-info: FlaskApp orjson / floor", "connexion:flask-fast service-info",
         "floor:service-info"),
        ("service-info: other / spe", "other:service-info", "spe:service-info"),
        ("status: other / spe", "other:status", "spe:status with token"),
    ]
    rows = [[name, p50[a], p50[b], f"{p50[a] / p50[b]:.2f}x"]
            for name, a, b in pairs if a in p50 and b in p50]
    print_table(["ratio (p50)", "a ms", "b ms", "a / b"], rows)


_: Callable[..., Any] = service_info  # resolved by name from SPEC

if __name__ == "__main__":
    main()
