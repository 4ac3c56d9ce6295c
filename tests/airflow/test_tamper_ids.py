"""Issue 13, finding 1: spoofed Airflow ids, through real Airflow 3.3 and real OPA.

On the KubernetesExecutor path the truth is what the scheduler passed to ``PodGenerator.construct_pod``;
on the KubernetesPodOperator path, the running task's context. A ``pod_override`` or operator labels
claiming ``dag_id=ops_debug`` change neither, and get no exemption keyed on that dag_id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import PodDenied
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES
from .conftest import construct, echoed, make_kpo, task_context

pytestmark = pytest.mark.airflow

RUN_ID = "manual__2026-11-25T12:00:00+00:00"
SPOOF = {"dag_id": "ops_debug", "task_id": "debug", "kubernetes_executor": "True"}


def spoofing_override(**container: Any) -> dict[str, Any]:
    """An executor_config whose pod_override writes dag_id=ops_debug into labels AND annotations."""
    return {
        "pod_override": k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(labels=dict(SPOOF), annotations=dict(SPOOF)),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", **container)]),
        )
    }


@pytest.fixture(scope="module")
def exempting_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOpa]:
    """The shipped library with an organisation's exemption for the DAG ops_debug."""
    config = tmp_path_factory.mktemp("config") / "config.json"
    config.write_text(json.dumps({"airflow": {"pod": {"config": {"exempt": {"debugging": {"dag_id": "ops_debug"}}}}}}))
    opa = LocalOpa([POLICIES, config]).start()
    yield opa
    opa.stop()


def test_executor_ids_come_from_construct_pod_not_from_pod_override(template_file, echo_opa, process_hook):
    process_hook(echo_opa.url)
    pod = construct(template_file, spoofing_override())
    assert pod.metadata.labels["dag_id"] == pod.metadata.annotations["dag_id"] == "ops_debug"  # the lie is there
    seen = echoed(pod)
    assert seen["dag_id"] == "etl" and seen["task_id"] == "load"
    assert seen["launcher"] == "kubernetes_executor"
    assert "untrusted" not in seen


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_a_spoofed_executor_pod_gets_no_exemption(template_file, exempting_opa, process_hook, fail_mode):
    from airflow.providers.cncf.kubernetes.pod_generator import PodMutationHookException

    process_hook(exempting_opa.url, fail_mode=fail_mode)
    override = spoofing_override(security_context=k8s.V1SecurityContext(privileged=True))
    with pytest.raises(PodMutationHookException) as raised:
        construct(template_file, override)
    assert isinstance(raised.value.__cause__, PodDenied)
    assert "deny_privileged" in str(raised.value.__cause__)


def test_the_real_ops_debug_dag_is_still_exempt(template_file, exempting_opa, process_hook):
    """The exemption works when the scheduler says so: a boundary, not a convenience."""
    process_hook(exempting_opa.url)
    pod = construct(template_file, {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[
        k8s.V1Container(name="base", security_context=k8s.V1SecurityContext(privileged=True))]))},
        dag_id="ops_debug")
    assert pod.spec.containers[0].security_context.privileged is True


def test_construct_pod_called_inside_a_running_task_is_not_the_scheduler(template_file, kubeconfig, echo_opa,
                                                                           process_hook):
    """DAG code calling construct_pod itself (in a task process) cannot pick its own ids."""
    from airflow.sdk.execution_time.context import set_current_context

    process_hook(echo_opa.url)
    running = task_context(make_kpo(kubeconfig), run_id=RUN_ID)
    with set_current_context(running):
        pod = construct(template_file, dag_id="ops_debug")
    seen = echoed(pod)
    assert "dag_id" in seen["untrusted"] and "launcher" in seen["untrusted"]


def test_kpo_spoofed_labels_inside_the_running_task(kubeconfig, echo_opa, process_hook):
    """Labels kubernetes_executor=true and dag_id=ops_debug on a KPO: the running task's ids win."""
    from airflow.sdk.execution_time.context import set_current_context

    process_hook(echo_opa.url)
    kpo = make_kpo(kubeconfig, labels={**SPOOF, "team": "analytics"},
                   annotations={"dag_id": "ops_debug", "task_id": "debug"})
    context = task_context(kpo, run_id=RUN_ID)
    with set_current_context(context):
        pod = kpo.build_pod_request_obj(context)
    seen = echoed(pod)
    assert seen["launcher"] == "kubernetes_pod_operator"  # the operator's label wins
    assert (seen["dag_id"], seen["task_id"], seen["run_id"]) == ("warehouse", "transform", RUN_ID)
    assert "untrusted" not in seen


def test_kpo_outside_a_running_task_has_untrusted_ids(kubeconfig, echo_opa, process_hook):
    process_hook(echo_opa.url)
    kpo = make_kpo(kubeconfig)
    pod = kpo.build_pod_request_obj(task_context(kpo, run_id=RUN_ID))
    assert {"dag_id", "task_id", "launcher"} <= set(echoed(pod)["untrusted"])
