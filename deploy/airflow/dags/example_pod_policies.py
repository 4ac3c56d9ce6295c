"""A DAG whose pods go through the OPA policies: see what they would do with
`airflow-opa-mutation scan /opt/airflow/dags` inside the container (no cluster needed)."""

from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

with DAG("example_pod_policies", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    KubernetesPodOperator(task_id="hardened", name="hardened", namespace="airflow", image="python:3.12-slim",
                          cmds=["python", "-c", "print('the policies add securityContext defaults')"])
    KubernetesPodOperator(task_id="privileged", name="privileged", namespace="airflow", image="busybox:1.36",
                          container_security_context={"privileged": True})  # denied by deny_privileged
