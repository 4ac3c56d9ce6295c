"""deploy/kubernetes/worker-pod-template.yaml as the KubernetesExecutor's pod_template_file: Airflow's own
PodGenerator builds worker pods from it and the hook runs them through the shipped policies in a real OPA.
The OPA sidecar must come through as a native sidecar, exactly as written."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from ..conftest import REPO
from ..test_kubernetes_manifests import SIDECAR
from .conftest import construct, override

pytestmark = pytest.mark.airflow

TEMPLATE = REPO / "deploy" / "kubernetes" / "worker-pod-template.yaml"


def test_worker_pods_built_from_the_template_keep_the_sidecar_through_the_shipped_policies(library_opa,
                                                                                          process_hook):
    process_hook(library_opa.url)
    pod = construct(TEMPLATE, override(image="registry.example.com/etl:2.1.0"))
    [opa] = pod.spec.init_containers
    assert isinstance(opa, k8s.V1Container) and opa.restart_policy == "Always"
    assert k8s.ApiClient().sanitize_for_serialization(opa) == SIDECAR
    assert {v.name for v in pod.spec.volumes} >= {"opa-config", "opa-persistence", "logs", "airflow-config"}
    base = pod.spec.containers[0]
    assert base.name == "base" and base.image == "registry.example.com/etl:2.1.0"
    assert base.security_context.allow_privilege_escalation is False
    assert pod.metadata.annotations["airflow-opa-mutation/automount-service-account-token"] == "true"
    assert pod.spec.automount_service_account_token is None, "the worker keeps its token: it launches pods"
    assert pod.metadata.labels["dag_id"] == "etl"


def test_dry_run_mode_changes_nothing_either(library_opa, process_hook):
    process_hook(library_opa.url, mode="dry-run")
    built = construct(TEMPLATE, mutate=False)
    mutated = construct(TEMPLATE)
    api = k8s.ApiClient()
    assert api.sanitize_for_serialization(mutated) == api.sanitize_for_serialization(built)
