"""The platform team's DAG under test: KubernetesPodOperator tasks and a task with an executor_config."""

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

with DAG("warehouse", schedule=None):
    KubernetesPodOperator(task_id="transform", name="dbt-run", namespace="data", image="registry.example.com/dbt:1.8.2",
                          cmds=["dbt"], arguments=["run"], kubernetes_conn_id=None)
    KubernetesPodOperator(task_id="adhoc", name="adhoc", namespace="data", image="python:latest",
                          kubernetes_conn_id=None)

    @task(executor_config={"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(
        name="base", resources=k8s.V1ResourceRequirements(requests={"cpu": "2", "memory": "8Gi"}),
    )]))})
    def load() -> None:
        pass

    load()
