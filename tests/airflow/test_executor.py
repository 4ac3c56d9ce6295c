"""The KubernetesExecutor's path: ``PodGenerator.construct_pod(..., with_mutation_hook=True)`` reconciling a
pod template file and an executor_config ``pod_override``, then calling the hook, against the shipped
policy library in a real OPA."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import AUDIT_ANNOTATION, OpaUnavailable, PodDenied

from .conftest import EXECUTOR_RUN_ID, assert_hardened_by_the_library, construct, override

pytestmark = pytest.mark.airflow

def test_worker_pod_gets_library_mutations_and_keeps_template_and_override(template_file, library_opa, process_hook):
    process_hook(library_opa.url)
    executor_config = {
        "pod_override": k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(labels={"cost-center": "analytics"}),
            spec=k8s.V1PodSpec(
                containers=[
                    k8s.V1Container(
                        name="base",
                        resources=k8s.V1ResourceRequirements(
                            requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}
                        ),
                    )
                ],
                tolerations=[k8s.V1Toleration(key="pool", operator="Equal", value="etl", effect="NoSchedule")],
            ),
        )
    }
    pod = construct(template_file, executor_config)

    # the policy library's mutations
    assert_hardened_by_the_library(pod)
    base = pod.spec.containers[0]
    assert pod.spec.automount_service_account_token is False
    audit = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert {"security_context", "service_account_token"} <= set(audit["policies"])
    # the pod template file
    assert pod.metadata.labels["team"] == "data-platform"
    assert pod.metadata.annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert pod.spec.service_account_name == "airflow-worker"
    assert base.image_pull_policy == "IfNotPresent"
    assert {(e.name, e.value) for e in base.env} >= {("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
                                                     ("AIRFLOW_IS_K8S_EXECUTOR_POD", "True")}
    assert [(m.name, m.mount_path) for m in base.volume_mounts] == [("logs", "/opt/airflow/logs")]
    assert isinstance(pod.spec.volumes[0], k8s.V1Volume) and pod.spec.volumes[0].empty_dir is not None
    # the executor_config pod_override
    assert pod.metadata.labels["cost-center"] == "analytics"
    assert isinstance(base.resources, k8s.V1ResourceRequirements)
    assert base.resources.requests == {"cpu": "500m", "memory": "1Gi"}
    assert base.resources.limits == {"memory": "2Gi"}
    assert isinstance(pod.spec.tolerations[0], k8s.V1Toleration) and pod.spec.tolerations[0].value == "etl"
    # what the executor itself set
    assert pod.metadata.name == "etl-load-0a1b2c3d" and pod.metadata.namespace == "airflow"
    assert pod.metadata.labels["kubernetes_executor"] == "True"
    assert pod.metadata.labels["airflow-worker"] == "42"
    assert pod.metadata.annotations["run_id"] == EXECUTOR_RUN_ID
    assert base.args == ["airflow", "tasks", "run", "etl", "load", EXECUTOR_RUN_ID]

    unmutated = construct(template_file, executor_config, mutate=False)
    assert unmutated.spec.containers[0].security_context is None  # all of that came from the policies


@pytest.mark.parametrize(
    ("executor_config", "policy"),
    [
        (override(security_context=k8s.V1SecurityContext(privileged=True)), "deny_privileged"),
        ({"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(host_pid=True, containers=[]))}, "deny_host_namespaces"),
        (
            {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[], volumes=[
                k8s.V1Volume(name="docker", host_path=k8s.V1HostPathVolumeSource(path="/var/run/docker.sock"))
            ]))},
            "deny_host_path",
        ),
    ],
    ids=["privileged", "host_pid", "host_path"],
)
def test_denied_pod_raises_pod_mutation_hook_exception_caused_by_pod_denied(
    template_file, library_opa, process_hook, executor_config, policy
):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(library_opa.url)
    with pytest.raises(PodMutationHookException) as raised:
        construct(template_file, executor_config)
    cause = raised.value.__cause__
    assert isinstance(cause, PodDenied)
    message = str(cause)
    assert f"[{policy}]" in message
    assert "airflow/etl-load-0a1b2c3d" in message and "dag_id=etl" in message and "task_id=load" in message
    # pod_security judges the same baseline control, with Kubernetes' wording
    assert {m.policy for m in cause.messages} == {policy, "pod_security"}


def test_opa_outage_fail_closed_raises(template_file, stopped_opa_url, process_hook):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(stopped_opa_url, timeout=0.5, fail_mode="closed")
    with pytest.raises(PodMutationHookException) as raised:
        construct(template_file, override(image="apache/airflow:3.3.2-python3.12"))
    assert isinstance(raised.value.__cause__, OpaUnavailable)
    assert stopped_opa_url in str(raised.value.__cause__)


def test_opa_outage_fail_open_returns_the_unmutated_pod(template_file, stopped_opa_url, process_hook):
    process_hook(stopped_opa_url, timeout=0.5, fail_mode="open")
    config = override(image="apache/airflow:3.3.2-python3.12")
    pod = construct(template_file, config)
    assert pod.to_dict() == construct(template_file, config, mutate=False).to_dict()
    assert pod.spec.containers[0].image == "apache/airflow:3.3.2-python3.12"
    assert AUDIT_ANNOTATION not in pod.metadata.annotations
