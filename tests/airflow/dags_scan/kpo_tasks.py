"""KubernetesPodOperator tasks for `airflow-opa-mutation scan`: plain, privileged (denied), mapped over
literals, from a pod template, and mapped over an upstream XCom (known only at run time)."""

from pathlib import Path

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, task

TEMPLATES = Path(__file__).parent / "templates"

COMMON = {"namespace": "data", "kubernetes_conn_id": None, "labels": {"team": "analytics"}}

with DAG("kpo_scan", schedule=None, tags=["scan"]):
    KubernetesPodOperator(task_id="plain", name="dbt-run", image="ghcr.io/example/dbt:1.8.2", cmds=["dbt"],
                          arguments=["run"], **COMMON)
    KubernetesPodOperator(task_id="privileged", name="docker-build", image="ghcr.io/example/builder:3.1.0",
                          container_security_context={"privileged": True}, **COMMON)
    KubernetesPodOperator.partial(task_id="mapped", name="shard", image="ghcr.io/example/shard:0.9.1",
                                  **COMMON).expand(arguments=[["--shard", "0"], ["--shard", "1"], ["--shard", "2"]])
    KubernetesPodOperator(task_id="from_template", pod_template_file=str(TEMPLATES / "kpo_template.yaml"),
                          arguments=["ingest"], **COMMON)

    @task(executor="LocalExecutor")
    def list_shards() -> list[list[str]]:
        return [["a"], ["b"]]

    KubernetesPodOperator.partial(task_id="xcom_mapped", name="dyn", image="ghcr.io/example/shard:0.9.1",
                                  **COMMON).expand(arguments=list_shards())
