"""deploy/monitoring/ sent to a real kube-apiserver (issue 25, item 12): the NetworkPolicies (built in) and,
after installing prometheus-operator's PodMonitor and PrometheusRule CRDs (v0.93.0's, fetched from its Go
module by scripts/install-schemas), the PodMonitors and the PrometheusRule, each with server-side dry run and
``fieldValidation=Strict``: the CRDs' schemas judge every field, and an unknown one is an error, not a
silently dropped field. The rules' PromQL is judged by promtool (tests/monitoring/test_rules.py)."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
import yaml

from ..conftest import REPO, schema
from .cluster import ControlPlane

MONITORING = REPO / "deploy" / "monitoring"
CRDS = ("monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")
PLURALS = {"NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
           "PodMonitor": ("monitoring.coreos.com/v1", "podmonitors"),
           "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules")}


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MONITORING / name).read_text()) if d]


@pytest.fixture(scope="module")
def monitoring_crds(kube_cluster: ControlPlane) -> ControlPlane:
    """The two CRDs, installed once (the control plane is the session's) and established."""
    for path in (schema(f"crds/{name}") for name in CRDS):
        crd = yaml.safe_load(path.read_text())
        result = kube_cluster.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        assert result.ok or result.status == 409, (path.name, result)
        name = crd["metadata"]["name"]
        for _ in range(300):
            got = kube_cluster.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            status = got.body.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"CRD {name} not established: {got}")
    return kube_cluster


def dry_run(plane: ControlPlane, namespace: str, document: dict[str, Any]):
    api_version, plural = PLURALS[document["kind"]]
    assert document["apiVersion"] == api_version, document["apiVersion"]
    document = copy.deepcopy(document)
    document["metadata"]["namespace"] = namespace
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return plane.request("POST", f"{prefix}/namespaces/{namespace}/{plural}", document,
                         dryRun="All", fieldValidation="Strict")


def accepted(plane: ControlPlane, namespace: str, document: dict[str, Any]) -> dict[str, Any]:
    result = dry_run(plane, namespace, document)
    assert result.status == 201, (document["metadata"]["name"], result)
    assert result.warnings == [], result.warnings
    return result.body


def test_the_network_policies_are_accepted(kube_cluster: ControlPlane, kube_namespace):
    namespace = kube_namespace()
    policies = documents("networkpolicy.yaml")
    assert {p["metadata"]["name"] for p in policies} == {
        "airflow-opa-admission", "airflow-opa-bundle-server", "airflow-opa-metrics"}
    for policy in policies:
        stored = accepted(kube_cluster, namespace, policy)
        assert stored["spec"] == {**policy["spec"], **{k: v for k, v in stored["spec"].items() if k not in policy["spec"]}}
    metrics = next(p for p in policies if p["metadata"]["name"] == "airflow-opa-metrics")
    [rule] = metrics["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [8282], "only the diagnostic port is opened"
    sidecar = yaml.safe_load((REPO / "deploy" / "kubernetes" / "opa-sidecar.yaml").read_text())
    assert {"name": "opa-diag", "containerPort": 8282} in sidecar["ports"]


def test_the_pod_monitors_and_the_rules_are_accepted(monitoring_crds: ControlPlane, kube_namespace):
    namespace = kube_namespace()
    monitors = documents("podmonitor.yaml")
    for monitor in monitors:
        stored = accepted(monitoring_crds, namespace, monitor)
        assert [e["port"] for e in stored["spec"]["podMetricsEndpoints"]] == ["opa-diag"]
    [rules] = documents("prometheus-rules.yaml")
    stored = accepted(monitoring_crds, namespace, rules)
    assert stored["spec"] == rules["spec"]


def test_strict_validation_refuses_an_unknown_field(monitoring_crds: ControlPlane, kube_namespace):
    """What makes the acceptance above mean something: the CRD's schema is enforced here."""
    namespace = kube_namespace()
    monitor = copy.deepcopy(documents("podmonitor.yaml")[0])
    monitor["spec"]["podMetricEndpoints"] = monitor["spec"].pop("podMetricsEndpoints")  # a typo
    result = dry_run(monitoring_crds, namespace, monitor)
    assert result.status == 400 and "podMetricEndpoints" in result.message, result
    [rules] = documents("prometheus-rules.yaml")
    broken = copy.deepcopy(rules)
    broken["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"  # not a duration
    result = dry_run(monitoring_crds, namespace, broken)
    assert result.status == 422, result
