"""Tasks the KubernetesExecutor runs in worker pods, with executor_config pod_overrides, for `scan`."""

from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

with DAG("executor_scan", schedule=None, tags=["scan"]):

    @task
    def default_worker() -> None:
        pass

    @task(executor_config={"pod_override": k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(labels={"cost-center": "analytics"}),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(
            name="base", resources=k8s.V1ResourceRequirements(requests={"cpu": "500m"}, limits={"memory": "2Gi"}),
        )]),
    )})
    def with_override() -> None:
        pass

    @task(executor_config={"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(host_pid=True, containers=[]))})
    def host_pid() -> None:
        pass

    default_worker()
    with_override()
    host_pid()
