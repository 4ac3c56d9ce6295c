"""The control plane is real: Pod Security admission, validation, storage and dry-run behave as in a
cluster. These tests guard the fixture itself, before any test trusts it to judge the hook's output."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as kube_config

from .cluster import ControlPlane


def plain_pod(name: str, **security: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.example/app:1.0"}
    if security.get("container"):
        container["securityContext"] = security["container"]
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if security.get("pod"):
        spec["securityContext"] = security["pod"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_restricted_rejects_a_privileged_pod_with_403(kube_cluster: ControlPlane, kube_namespace):
    namespace = kube_namespace("restricted")
    result = kube_cluster.create_pod(namespace, plain_pod("privileged", container={"privileged": True}))
    assert result.status == 403, result
    assert 'violates PodSecurity "restricted:latest"' in result.message
    assert "privileged" in result.message
    assert kube_cluster.list_pods(namespace) == []


def test_restricted_accepts_a_compliant_pod_and_stores_it(kube_cluster: ControlPlane, kube_namespace):
    namespace = kube_namespace("restricted")
    result = kube_cluster.create_pod(namespace, plain_pod("compliant", container=RESTRICTED_CONTAINER))
    assert result.status == 201, result
    assert result.warnings == []
    stored = kube_cluster.get_pod(namespace, "compliant")
    assert stored.ok, stored
    assert stored.body["metadata"]["uid"] == result.body["metadata"]["uid"]
    assert stored.body["spec"]["containers"][0]["securityContext"] == RESTRICTED_CONTAINER
    assert stored.body["status"]["phase"] == "Pending"  # no kubelet: stored, never run


def test_dry_run_admits_but_stores_nothing(kube_cluster: ControlPlane, kube_namespace):
    namespace = kube_namespace("restricted")
    compliant = kube_cluster.create_pod(namespace, plain_pod("dry", container=RESTRICTED_CONTAINER), dry_run=True)
    assert compliant.status == 201, compliant
    assert compliant.body["metadata"]["name"] == "dry"
    rejected = kube_cluster.create_pod(namespace, plain_pod("dry-bad", container={"privileged": True}), dry_run=True)
    assert rejected.status == 403, rejected
    assert "violates PodSecurity" in rejected.message
    assert kube_cluster.get_pod(namespace, "dry").status == 404
    assert kube_cluster.list_pods(namespace) == []


def test_baseline_accepts_what_restricted_rejects(kube_cluster: ControlPlane, kube_namespace):
    pod = plain_pod("bare")  # no securityContext: fine for baseline, not for restricted
    restricted = kube_cluster.create_pod(kube_namespace("restricted"), copy.deepcopy(pod))
    assert restricted.status == 403, restricted
    for check in ("allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true"):
        assert check in restricted.message
    baseline = kube_cluster.create_pod(kube_namespace("baseline", warn="restricted"), copy.deepcopy(pod))
    assert baseline.status == 201, baseline
    # warn=restricted: admitted, with the restricted verdict as a warning
    assert any('would violate PodSecurity "restricted:latest"' in w for w in baseline.warnings), baseline.warnings


def test_validation_rejects_with_422_before_admission(kube_cluster: ControlPlane, kube_namespace):
    """An invalid pod is refused by validation (422), whatever the Pod Security level."""
    pod = plain_pod("bad-escalation", container={"privileged": True, "allowPrivilegeEscalation": False})
    result = kube_cluster.create_pod(kube_namespace("privileged"), pod)
    assert result.status == 422, result
    assert "cannot set `allowPrivilegeEscalation` to false and `privileged` to true" in result.message


def test_the_kubeconfig_works_with_the_kubernetes_client(kube_cluster: ControlPlane, kube_namespace):
    namespace = kube_namespace("baseline")
    api = k8s.CoreV1Api(kube_config.new_client_from_config(config_file=str(kube_cluster.kubeconfig)))
    try:
        names = [item.metadata.name for item in api.list_namespace().items]
        assert namespace in names
        accounts = [item.metadata.name for item in api.list_namespaced_service_account(namespace).items]
        assert accounts == ["default"]
    finally:
        api.api_client.close()
