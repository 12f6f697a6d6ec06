"""Render a Helm chart with Helm's own engine, offline, and print the manifests as JSON.

There is no ``helm`` binary here and ``helm-sdkpy`` (Helm v4 as a library, Python 3.12)
has no ``template``/``--dry-run``. So this script gives Helm an API server to install
against: a loopback stub that answers ``/version`` and API discovery for the kinds a chart
may use, keeps nothing, and records what Helm stores. Helm renders the chart, checks the
values against ``values.schema.json``, and stores the release (a Secret holding the
rendered manifest and hooks, exactly what ``helm template`` prints) before it creates any
object; the script reads the manifests back from that Secret.

    python3.12 scripts/helm_render.py CHART [-f VALUES.yaml ...] [--kube-version 1.30]
        [--release NAME] [--namespace NS]
    python3.12 scripts/helm_render.py --lint CHART     # Helm's lint, as JSON

Output (stdout): ``{"manifest": "...", "hooks": [{"path": ..., "manifest": ...,
"events": [...]}], "error": "..."}``; ``error`` is where Helm's install stopped after
storing the release (at the first hook or object: the stub serves no OpenAPI document),
which does not matter for rendering. Exit 1 with Helm's error on stderr when rendering
fails (a template error, a schema violation, an unsupported Kubernetes version).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import helm_sdkpy  # Python 3.12: run this script with the venv of scripts/helm-venv.sh
import yaml

# group/version -> [(plural, Kind, namespaced)]: what the stub says it serves.
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [("namespaces", "Namespace", False), ("secrets", "Secret", True),
           ("configmaps", "ConfigMap", True), ("services", "Service", True),
           ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True),
           ("persistentvolumeclaims", "PersistentVolumeClaim", True)],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True),
                             ("networkpolicies", "NetworkPolicy", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
}


def _resource_list(group_version: str) -> dict[str, Any]:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [{"name": plural, "singularName": kind.lower(), "kind": kind,
                           "namespaced": namespaced, "verbs": verbs}
                          for plural, kind, namespaced in RESOURCES[group_version]]}


def _group_list() -> dict[str, Any]:
    groups = []
    for group_version in RESOURCES:
        if "/" not in group_version:
            continue
        group, version = group_version.split("/")
        entry = {"groupVersion": group_version, "version": version}
        groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


class Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kube_version: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.kube_version = kube_version
        self.releases: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404, "message": "not found"})

    def do_GET(self) -> None:
        path = urlparse(self.path).path.rstrip("/")
        major, minor = self.server.kube_version.split(".")[:2]
        if path == "/version":
            self._send(200, {"major": major, "minor": minor,
                             "gitVersion": f"v{major}.{minor}.0", "platform": "linux/amd64"})
        elif path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        elif path == "/apis":
            self._send(200, _group_list())
        elif path == "/api/v1":
            self._send(200, _resource_list("v1"))
        elif path.startswith("/apis/") and path.count("/") == 3 and path[6:] in RESOURCES:
            self._send(200, _resource_list(path[6:]))
        elif path.endswith("/secrets"):  # Helm lists its release records: none yet
            self._send(200, {"kind": "SecretList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": "1"}, "items": []})
        else:
            self._not_found()

    def _body(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if "protobuf" in self.headers.get("Content-Type", ""):
            return secret_from_protobuf(raw)
        body: dict[str, Any] = json.loads(raw or b"{}")
        return body

    def do_POST(self) -> None:
        obj = self._body()
        with self.server.lock:
            if obj.get("kind") == "Secret" and obj.get("metadata", {}).get(
                    "labels", {}).get("owner") == "helm":
                self.server.releases.append(obj)
        obj.setdefault("metadata", {}).update(
            {"resourceVersion": "1", "uid": "00000000-0000-0000-0000-000000000001",
             "creationTimestamp": "2026-01-01T00:00:00Z"})
        self._send(201, obj)

    def do_PUT(self) -> None:
        obj = self._body()
        with self.server.lock:
            if obj.get("kind") == "Secret":
                self.server.releases.append(obj)
        self._send(200, obj)

    def do_PATCH(self) -> None:
        self._not_found()

    def do_DELETE(self) -> None:
        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


def _fields(data: bytes) -> dict[int, list[Any]]:
    """Protocol-buffer wire format: field number -> values (varints as int, the rest as
    bytes). Enough to read the Secret in which Helm's client stores a release."""
    out: dict[int, list[Any]] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value = varint()
        elif wire == 2:
            size = varint()
            value, pos = data[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire} not expected")
        out.setdefault(number, []).append(value)
    return out


def secret_from_protobuf(raw: bytes) -> dict[str, Any]:
    """A Secret sent as ``application/vnd.kubernetes.protobuf`` (magic ``k8s\\0``, then a
    runtime.Unknown whose field 2 is the Secret) as the JSON shape of a Secret."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf envelope")
    secret = _fields(_fields(raw[4:])[2][0])
    meta = _fields(secret[1][0])
    labels = {}
    for entry in meta.get(11, []):
        pair = _fields(entry)
        labels[pair[1][0].decode()] = pair.get(2, [b""])[0].decode()
    data = {}
    for entry in secret.get(2, []):
        pair = _fields(entry)
        data[pair[1][0].decode()] = base64.b64encode(pair.get(2, [b""])[0]).decode()
    return {"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": meta[1][0].decode(), "labels": labels}, "data": data}


def decode_release(secret: dict[str, Any]) -> dict[str, Any]:
    """Helm's secrets driver: base64(gzip(JSON)), base64 again as Secret data."""
    inner = base64.b64decode(secret["data"]["release"])
    release: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(inner)))
    return release


def kubeconfig(url: str, namespace: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "stub",
        "clusters": [{"name": "stub", "cluster": {"server": url}}],
        "users": [{"name": "stub", "user": {"token": "stub"}}],
        "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub",
                                                  "namespace": namespace}}]})


def render(chart: Path, values: dict[str, Any], kube_version: str, release: str,
           namespace: str) -> dict[str, Any]:
    stub = Stub(kube_version)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    error = ""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config_path = Path(tmp) / "kubeconfig"
            config_path.write_text(kubeconfig(f"http://127.0.0.1:{stub.server_address[1]}",
                                              namespace), encoding="utf-8")
            config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=str(config_path))
            try:
                asyncio.run(helm_sdkpy.Install(config).run(
                    release, str(chart), values=values, wait=False, timeout=20))
            except helm_sdkpy.HelmError as exc:
                error = str(exc)
    finally:
        stub.shutdown()
    if not stub.releases:
        raise RuntimeError(error or "Helm stored no release")
    record = decode_release(stub.releases[0])
    return {"manifest": record.get("manifest", ""),
            "hooks": [{"path": h.get("path"), "manifest": h.get("manifest"),
                       "events": h.get("events")} for h in record.get("hooks") or []],
            "error": error}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("-f", "--values", type=Path, action="append", default=[])
    parser.add_argument("--kube-version", default="1.30")
    parser.add_argument("--release", default="spe")
    parser.add_argument("--namespace", default="spe")
    parser.add_argument("--lint", action="store_true", help="run Helm's lint instead")
    args = parser.parse_args()
    if args.lint:
        config = helm_sdkpy.Configuration()
        json.dump(asyncio.run(helm_sdkpy.Lint(config).run(str(args.chart))), sys.stdout)
        return 0
    values: dict[str, Any] = {}
    for path in args.values:
        values = merge(values, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    try:
        out = render(args.chart, values, args.kube_version, args.release, args.namespace)
    except RuntimeError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    json.dump(out, sys.stdout)
    return 0


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of value files, later wins (as ``helm -f a -f b``)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


if __name__ == "__main__":
    sys.exit(main())
