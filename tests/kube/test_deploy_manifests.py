"""deploy/kubernetes/ sent to a real kube-apiserver with server-side dry run (``dryRun=All``): validation,
defaulting and Pod Security admission at "restricted" judge the objects exactly as a cluster would, and
nothing is stored.

The worker pod template goes in twice: as written, and as the scheduler's hook sends it after the shipped
policies (the pod the KubernetesExecutor creates). The scheduler pod is the chart's scheduler reduced to
what values.yaml adds: the sidecar under initContainers and its volumes.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_opa_mutation import MutationHook, Settings, _pod_codec
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES
from ..test_kubernetes_manifests import SIDECAR, VALUES, load, worker_pod_from_template
from .cluster import ControlPlane


def dry_run_config_map(plane: ControlPlane, namespace: str, document: dict[str, Any]):
    return plane.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", document, dryRun="All")


def test_the_config_maps_are_accepted(kube_cluster: ControlPlane, kube_namespace):
    namespace = kube_namespace("restricted")
    for name in ("opa-configmap.yaml", "opa-env-configmap.yaml"):
        document = load(name)
        result = dry_run_config_map(kube_cluster, namespace, document)
        assert result.status == 201, (name, result)
        assert result.body["data"] == document["data"]
    assert kube_cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/airflow-opa-sidecar").status == 404


def _assert_admitted(result, pod: dict[str, Any]) -> None:
    assert result.status == 201, result
    assert result.warnings == [], result.warnings
    [opa] = result.body["spec"]["initContainers"]
    assert opa["restartPolicy"] == "Always", "stored as a native sidecar"
    assert opa["args"] == SIDECAR["args"]
    assert opa["securityContext"] == SIDECAR["securityContext"]
    # The ServiceAccount admission plugin adds the token volume unless the pod opts out.
    stored = [v["name"] for v in result.body["spec"]["volumes"] if not v["name"].startswith("kube-api-access-")]
    assert stored == [v["name"] for v in pod["spec"]["volumes"]]


def test_the_worker_pod_template_is_admitted_at_restricted_as_written_and_after_the_hook(
    kube_cluster: ControlPlane, kube_namespace
):
    namespace = kube_namespace("restricted")
    pod = worker_pod_from_template()
    pod["metadata"]["namespace"] = namespace
    _assert_admitted(kube_cluster.create_pod(namespace, pod, dry_run=True), pod)

    with LocalOpa([POLICIES]) as opa:
        hook = MutationHook(Settings(url=opa.url))
        try:
            model = _pod_codec.decode(copy.deepcopy(pod))
            hook(model)
        finally:
            hook.close()
    sent = _pod_codec.encode(model)
    assert sent["spec"]["initContainers"] == [SIDECAR], "the shipped policies leave the sidecar alone"
    _assert_admitted(kube_cluster.create_pod(namespace, sent, dry_run=True), sent)
    assert kube_cluster.list_pods(namespace) == []


def test_the_scheduler_pod_with_the_values_sidecar_is_admitted_at_restricted(kube_cluster: ControlPlane,
                                                                             kube_namespace):
    namespace = kube_namespace("restricted")
    scheduler = VALUES["scheduler"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "airflow-scheduler-0", "namespace": namespace},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 50000, "runAsGroup": 0,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": scheduler["extraInitContainers"],
            "containers": [{
                "name": "scheduler",
                "image": f"{VALUES['images']['airflow']['repository']}:{VALUES['images']['airflow']['tag']}",
                "args": ["bash", "-c", "exec airflow scheduler"],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": scheduler["extraVolumes"],
        },
    }
    _assert_admitted(kube_cluster.create_pod(namespace, pod, dry_run=True), pod)


def test_the_persistent_bundle_claim_and_the_scheduler_using_it_are_admitted(kube_cluster: ControlPlane,
                                                                           kube_namespace):
    """deploy/kubernetes/opa-bundle-pvc.yaml and the scheduler pod with values-persistent-bundle.yaml's volumes."""
    namespace = kube_namespace("restricted")
    claim = load("opa-bundle-pvc.yaml")
    result = kube_cluster.request("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", claim,
                                  dryRun="All")
    assert result.status == 201, result
    volumes = load("values-persistent-bundle.yaml")["scheduler"]["extraVolumes"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "airflow-scheduler-0", "namespace": namespace},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 50000, "runAsGroup": 0, "fsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": VALUES["scheduler"]["extraInitContainers"],
            "containers": [{
                "name": "scheduler",
                "image": f"{VALUES['images']['airflow']['repository']}:{VALUES['images']['airflow']['tag']}",
                "args": ["bash", "-c", "exec airflow scheduler"],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": volumes,
        },
    }
    _assert_admitted(kube_cluster.create_pod(namespace, pod, dry_run=True), pod)
