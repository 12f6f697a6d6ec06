"""charts/spe rendered by Helm's own engine (Helm v4 as a library, through a loopback API
stub: scripts/helm_render.py) for the default values and the site examples, at each
supported Kubernetes version; every object validates against that version's schemas
(kubernetes-validate, strict) and carries the hardening Pod Security "restricted" wants."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import (
    CHART,
    EXAMPLES,
    KUBE_VERSIONS,
    documents,
    inlined_secrets,
    render,
    run_helm,
    security_problems,
)

pytestmark = pytest.mark.external  # starts a Python 3.12 process running Helm
kubernetes_validate = pytest.importorskip("kubernetes_validate")
CASES = {"default": (), **{p.stem: (p,) for p in EXAMPLES}}
CRD_GROUPS = ("monitoring.coreos.com/",)  # custom resources: no schema in kubernetes-validate


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {(case, version): documents(render(values=values, kube_version=version))
            for case, values in CASES.items() for version in KUBE_VERSIONS}


def test_the_chart_passes_helm_lint() -> None:
    proc = run_helm("--lint", str(CHART))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["Errors"] is None, result
    assert [m for m in result["Messages"] if m["Severity"] > 1] == [], result


def test_helm_lint_finds_a_broken_template(tmp_path: Path) -> None:
    chart = shutil.copytree(CHART, tmp_path / "spe")
    (chart / "templates" / "broken.yaml").write_text("{{ .Values.nope.x }}\n")
    result = json.loads(run_helm("--lint", str(chart)).stdout)
    assert result["Errors"], result


def test_the_examples_are_the_two_sites() -> None:
    assert {p.stem for p in EXAMPLES} == {"denbi-site", "dev-bundled"}


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_rendered_object_validates(rendered: dict[tuple[str, str], list[dict[str, Any]]],
                                         case: str, version: str) -> None:
    docs = rendered[(case, version)]
    assert len(docs) > 10
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue
        kubernetes_validate.validate(doc, f"{version}.0", strict=True)


def kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def test_the_default_release_has_every_part(
        rendered: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    by_kind = kinds(rendered[("default", "1.30")])
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == {"spe-api", "spe-worker"}
    assert deployments["spe-api"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "serve"]
    assert deployments["spe-worker"]["spec"]["template"]["spec"]["containers"][0][
        "args"] == ["worker", "--concurrency", "4"]
    (job,) = by_kind["Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    for kind in ("Service", "Ingress", "ConfigMap", "PersistentVolumeClaim",
                 "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
                 "ServiceAccount"):
        assert kind in by_kind, kind
    (ingress,) = by_kind["Ingress"]
    assert ingress["spec"]["tls"][0]["secretName"] == "spe-tls"
    (hpa,) = by_kind["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "spe-worker"
    assert "replicas" not in deployments["spe-worker"]["spec"]  # the HPA owns it
    assert "ServiceMonitor" not in by_kind  # optional, off by default


def test_the_api_is_probed_on_healthz_and_readyz(
        rendered: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    api = next(d for d in rendered[("default", "1.30")] if d["kind"] == "Deployment"
               and d["metadata"]["name"] == "spe-api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("case", CASES)
def test_every_pod_is_restricted(rendered: dict[tuple[str, str], list[dict[str, Any]]],
                                 case: str) -> None:
    docs = rendered[(case, "1.30")]
    assert security_problems(docs) == []
    for doc in docs:
        if doc["kind"] == "ServiceAccount":
            assert doc["automountServiceAccountToken"] is False


@pytest.mark.parametrize("case", CASES)
def test_no_secret_value_is_inlined(rendered: dict[tuple[str, str], list[dict[str, Any]]],
                                    case: str) -> None:
    docs = rendered[(case, "1.30")]
    assert inlined_secrets(docs) == []
    api = next(d for d in docs if d["kind"] == "Deployment"
               and d["metadata"]["name"] == "spe-api")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
            for e in api["spec"]["template"]["spec"]["containers"][0]["env"] if "valueFrom" in e}
    assert refs["SPE_DATABASE_URL"] and refs["SPE_REDIS_URL"] and refs["SPE_SECRET_KEY"]


def test_a_deployment_without_run_as_non_root_is_caught(tmp_path: Path) -> None:
    chart = shutil.copytree(CHART, tmp_path / "spe")
    helpers = chart / "templates" / "_helpers.tpl"
    helpers.write_text(helpers.read_text().replace("runAsNonRoot: true\n", ""))
    problems = security_problems(documents(render(chart)))
    assert "Deployment/spe-api/api: runAsNonRoot is not set" in problems
    assert "Deployment/spe-worker/worker: runAsNonRoot is not set" in problems


def test_a_secret_value_in_the_values_is_refused() -> None:
    proc = run_helm(str(CHART), "-f", str(Path(__file__).parent / "inline-secret.yaml"))
    assert proc.returncode == 1
    assert "additional properties 'password' not allowed" in proc.stderr, proc.stderr


def test_a_kubernetes_older_than_supported_is_refused() -> None:
    proc = run_helm(str(CHART), "--kube-version", "1.27")
    assert proc.returncode == 1
    assert "incompatible with Kubernetes v1.27.0" in proc.stderr


def network_policies(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}


@pytest.mark.parametrize("case", CASES)
def test_network_policies_deny_by_default(rendered: dict[tuple[str, str], list[dict[str, Any]]],
                                          case: str) -> None:
    policies = network_policies(rendered[(case, "1.30")])
    deny = policies["spe-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": "spe"}}


def test_egress_is_only_dns_and_the_listed_endpoints(
        rendered: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    default = network_policies(rendered[("default", "1.30")])["spe-egress"]["egress"]
    assert len(default) == 1  # DNS only until the site lists its endpoints
    site = network_policies(rendered[("denbi-site", "1.30")])["spe-egress"]["egress"]
    cidrs = {rule["to"][0]["ipBlock"]["cidr"]: sorted(p["port"] for p in rule["ports"])
             for rule in site[1:]}
    assert cidrs == {"193.196.0.0/16": [443], "10.10.0.20/32": [5432],
                     "10.10.0.21/32": [6380], "10.10.0.30/32": [443],
                     "10.20.0.10/32": [22, 6817]}
    assert all("0.0.0.0/0" not in json.dumps(rule) for rule in site)


def test_the_site_example_uses_its_claims_and_monitoring(
        rendered: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    by_kind = kinds(rendered[("denbi-site", "1.30")])
    assert "PersistentVolumeClaim" not in by_kind  # existing claims only
    (monitor,) = by_kind["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"] == {
        "name": "spe-metrics", "key": "token"}
    settings = next(d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == "spe-settings")
    assert settings["data"]["SPE_EXECUTOR"] == "slurm"
    assert settings["data"]["SPE_QUARANTINE_DIR"] == "/var/lib/spe-quarantine"
    assert json.loads(settings["data"]["SPE_TRUSTED_PROXIES"]) == ["10.42.0.0/16"]
    for service in ("DATABASE", "REDIS", "S3"):
        assert settings["data"][f"SPE_{service}_CA_FILE"] == "/etc/spe/ca/ca.crt"
    for deployment in by_kind["Deployment"]:
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["ca"]["configMap"]["name"] == "spe-site-ca"
    assert not any(d["metadata"]["name"] == "spe-policy" for d in by_kind["ConfigMap"])


def test_the_dev_example_bundles_postgres_and_redis(
        rendered: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    by_kind = kinds(rendered[("dev-bundled", "1.30")])
    names = {d["metadata"]["name"] for d in by_kind["Deployment"]}
    assert names == {"spe-api", "spe-worker", "spe-postgresql", "spe-redis"}
    assert "HorizontalPodAutoscaler" not in by_kind
    (job,) = by_kind["Job"]  # the database is in the release: migrate after install
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert job["spec"]["backoffLimit"] == 6
    assert "spe-bundled-ingress" in network_policies(rendered[("dev-bundled", "1.30")])
    assert not any("postgresql" in d["metadata"]["name"]
                   for d in kinds(rendered[("default", "1.30")])["Deployment"])
