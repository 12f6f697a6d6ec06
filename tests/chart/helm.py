"""Helpers of the chart tests: Helm's own engine through scripts/helm_render.py (Helm v4 as
a library, in the Python 3.12 venv that scripts/helm-venv.sh makes), and the checks every
rendered manifest must pass."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "spe"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
RENDER = ROOT / "scripts" / "helm_render.py"
KUBE_VERSIONS = ("1.28", "1.29", "1.30", "1.31")
SECRET_ENV = frozenset({"SPE_DATABASE_URL", "SPE_REDIS_URL", "SPE_OIDC_CLIENT_SECRET",
                        "SPE_S3_ACCESS_KEY", "SPE_S3_SECRET_KEY", "SPE_SECRET_KEY",
                        "SPE_METRICS_TOKEN",
                        "POSTGRES_PASSWORD"})


def helm_python() -> Path:
    """SPE_HELM_PYTHON, else the venv of scripts/helm-venv.sh; skips where neither has
    helm-sdkpy (it needs Python 3.12)."""
    path = Path(os.environ.get("SPE_HELM_PYTHON") or ROOT / ".venv-helm" / "bin" / "python")
    if not path.exists():
        pytest.skip(f"no Python 3.12 with helm-sdkpy at {path}: run scripts/helm-venv.sh "
                    "(needs Python 3.12, e.g. from pyenv)")
    return path


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_python()), str(RENDER), *args], capture_output=True,
                          text=True, timeout=120, check=False)


def render(chart: Path = CHART, values: tuple[Path, ...] = (), kube_version: str = "1.30"
           ) -> dict[str, Any]:
    """Helm's rendering: {"manifest": str, "hooks": [...]}; fails the test on an error."""
    args = [str(chart), "--kube-version", kube_version]
    for path in values:
        args += ["-f", str(path)]
    proc = run_helm(*args)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def documents(rendered: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object of the release, hooks included."""
    texts = [rendered["manifest"], *(h["manifest"] for h in rendered["hooks"])]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
            for d in docs if d["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}]


def container_problems(where: str, container: dict[str, Any], pod: dict[str, Any]
                       ) -> list[str]:
    ctx = container.get("securityContext", {})
    capabilities = ctx.get("capabilities", {})
    resources = container.get("resources", {})
    checks = {
        "runAsNonRoot is not set": not (ctx.get("runAsNonRoot") or pod.get("runAsNonRoot")),
        "runs as root or an unknown user": ctx.get("runAsUser", pod.get("runAsUser"))
        in (0, None),
        "allowPrivilegeEscalation is not false": ctx.get("allowPrivilegeEscalation")
        is not False,
        "the root filesystem is writable": ctx.get("readOnlyRootFilesystem") is not True,
        "privileged": bool(ctx.get("privileged")),
        "capabilities are not drop [ALL]": capabilities.get("drop") != ["ALL"],
        "adds capabilities": bool(capabilities.get("add")),
        "no cpu and memory requests and limits": not all(
            {"cpu", "memory"} <= set(resources.get(kind, {})) for kind in ("requests", "limits")),
    }
    return [f"{where}: {problem}" for problem, failed in checks.items() if failed]


def security_problems(docs: list[dict[str, Any]]) -> list[str]:
    """What Pod Security "restricted" (and this chart's hardening) would refuse."""
    problems = []
    for name, spec in pod_specs(docs):
        pod = spec.get("securityContext", {})
        checks = {
            "automountServiceAccountToken is not false":
                spec.get("automountServiceAccountToken") is not False,
            "pod seccompProfile is not RuntimeDefault":
                pod.get("seccompProfile", {}).get("type") != "RuntimeDefault",
            "shares a host namespace": any(spec.get(k) for k in ("hostNetwork", "hostPID",
                                                                 "hostIPC")),
            "mounts a hostPath": any("hostPath" in v for v in spec.get("volumes", [])),
        }
        problems += [f"{name}: {problem}" for problem, failed in checks.items() if failed]
        for container in spec.get("initContainers", []) + spec["containers"]:
            problems += container_problems(f"{name}/{container['name']}", container, pod)
    return problems


def inlined_secrets(docs: list[dict[str, Any]]) -> list[str]:
    """Secret values the chart would carry: any Secret object, a secret setting given as a
    plain value or in a ConfigMap."""
    found = [f"Secret/{d['metadata']['name']}" for d in docs if d["kind"] == "Secret"]
    for d in docs:
        if d["kind"] == "ConfigMap":
            found += [f"ConfigMap/{d['metadata']['name']}: {k}"
                      for k in d.get("data", {}) if k in SECRET_ENV]
    for name, spec in pod_specs(docs):
        for container in spec["containers"]:
            for env in container.get("env", []):
                if env["name"] in SECRET_ENV and "secretKeyRef" not in env.get("valueFrom", {}):
                    found.append(f"{name}/{container['name']}: {env['name']}")
    return found
