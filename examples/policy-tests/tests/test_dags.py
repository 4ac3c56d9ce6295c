"""Every pod the DAGs would launch, built by Airflow itself, through the hook against our policies."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def warehouse(opa_mutation):
    # A DAG file or folder (loaded with Airflow's DagBag), or a DAG object.
    return opa_mutation.run_dag(HERE / "dags" / "warehouse.py", pod_template_file=HERE / "pod_template.yaml")


def test_only_the_latest_image_is_refused(warehouse):
    assert [(row.task_id, row.launcher) for row in warehouse.denied()] == [("adhoc", "kubernetes_pod_operator")]


def test_kpo_pods_are_hardened(warehouse):
    transform = warehouse.get("transform", launcher="kubernetes_pod_operator")
    assert transform.airflow["launcher"] == "kubernetes_pod_operator"
    assert transform.pod.spec.containers[0].security_context.run_as_non_root is True
    assert transform.pod.spec.automount_service_account_token is False


def test_the_executor_keeps_the_task_s_own_resources(warehouse):
    load = warehouse.get("load", launcher="kubernetes_executor")
    assert load.pod.spec.containers[0].resources.requests == {"cpu": "2", "memory": "8Gi"}
    # resource_defaults adds the missing memory limit, raised from the default 2Gi to the task's request
    assert load.pod.spec.containers[0].resources.limits == {"memory": "8Gi"}
