"""The task's Execution API token in a KubernetesExecutor worker pod never reaches a log.

Airflow 3's executor puts the whole workload (``ExecuteTask``) into the worker's args as
``python -m airflow.sdk.execution_time.execute_workload --json-string {...}``, and that JSON holds the token
the scheduler's JWT generator signed for the task. Here the real executor code builds the pod
(``AirflowKubernetesScheduler._build_pod_request``: ``workload_to_command_args``, then
``PodGenerator.construct_pod`` and the hook), a real OPA serving the shipped policies with the shipped mask
decides it, and its decision logs go to a collector (and to the console): the token must be in none of
them, nor in the hook's dry-run diff, while the masked pod still shows the argument was there.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import jwt
import pytest

from ..bundles.servers import Collector
from ..conftest import POLICIES, REPO

pytestmark = pytest.mark.airflow

MASK = REPO / "deploy" / "opa" / "mask.rego"
SIGNING_KEY = "workload-token-test-signing-key-" + "k" * 32
WORKER_COMMAND = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]

#: The shipped library plus an image mirror: it rewrites the image, two lines below the args in the
#: dry-run diff, so the workload JSON is among the lines the diff shows.
CONFIG = {"airflow": {"pod": {"config": {"policies": {
    "image_registry_mirror": {"enabled": True, "params": {"mirrors": {"docker.io": "registry.example.com/dockerhub"}}},
}}}}}

TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: placeholder-name
spec:
  serviceAccountName: airflow-worker
  restartPolicy: Never
  containers:
    - name: base
      image: apache/airflow:3.3.2
"""


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.stop()


@pytest.fixture
def logging_opa(tmp_path: Path, collector: Collector) -> Iterator[Any]:
    """The shipped policies and mask, decision logs to the collector (every second) and to the console."""
    from airflow_opa_mutation.cli._local_opa import LocalOpa

    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    opa = LocalOpa([POLICIES, config, MASK], args=[
        "--set", f"services.collector.url={collector.url}",
        "--set", "decision_logs.service=collector",
        "--set", "decision_logs.reporting.min_delay_seconds=1",
        "--set", "decision_logs.reporting.max_delay_seconds=1",
        "--set", "decision_logs.console=true",
    ]).start()
    yield opa
    opa.stop()


def _workload(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An ``ExecuteTask`` the way the scheduler makes one, its token signed by the executor's own generator."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstanceDTO
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", SIGNING_KEY)
    ti = TaskInstanceDTO(id=uuid4(), dag_id="etl", task_id="load", run_id="scheduled__2026-12-07T00:00:00+00:00",
                         try_number=1, dag_version_id=uuid4(), pool_slots=1, priority_weight=1, queue="default")
    token = ExecuteTask.generate_token(str(ti.id), KubernetesExecutor().jwt_generator)
    return ExecuteTask(ti=ti, dag_rel_path=Path("dags/etl.py"), token=token, log_path="dag_id=etl/load.log",
                       bundle_info=BundleInfo(name="dags-folder"))


def _worker_pod(workload: Any, template: Path) -> Any:
    """The executor's own pod building for one job (no API call; the hook runs inside construct_pod)."""
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_types import KubernetesJob
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import AirflowKubernetesScheduler
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig

    # __init__ would start the pod watchers (processes talking to a cluster); building a pod needs none of it.
    scheduler = object.__new__(AirflowKubernetesScheduler)
    scheduler.kube_config = KubeConfig()
    scheduler.namespace = "airflow"
    scheduler.scheduler_job_id = "42"
    scheduler.supports_task_instance_uuid = False
    return scheduler._build_pod_request(KubernetesJob(workload.ti.key, [workload], None, str(template)))


@pytest.mark.parametrize("mode", ["dry-run", "enforce"])
def test_the_workload_token_reaches_neither_the_decision_logs_nor_the_hooks_log(
    mode, tmp_path, monkeypatch, caplog, logging_opa, collector, process_hook
):
    caplog.set_level(logging.INFO, logger="airflow_opa_mutation")
    template = tmp_path / "pod_template.yaml"
    template.write_text(TEMPLATE)
    workload = _workload(monkeypatch)
    token = workload.token
    claims = jwt.decode(token, SIGNING_KEY, algorithms=["HS512"], audience="urn:airflow.apache.org:task")
    assert claims["sub"] == str(workload.ti.id) and claims["scope"] == "workload"  # a real task token

    process_hook(logging_opa.url, mode=mode)
    pod = _worker_pod(workload, template)

    args = pod.spec.containers[0].args
    assert args[:4] == WORKER_COMMAND and json.loads(args[4])["token"] == token  # the pod carries it
    if mode == "enforce":
        assert pod.spec.containers[0].image == "registry.example.com/dockerhub/apache/airflow:3.3.2"

    [decision_id] = [r.getMessage().split("decision_id=")[1].split()[0] for r in caplog.records
                     if r.getMessage().startswith("opa_mutation ")]

    def logged(c: Collector) -> list[dict[str, Any]]:
        return [e for e in c.events if e.get("decision_id") == decision_id]

    [event] = collector.wait_for(logged)
    # masked, not deleted: the argument is still there, as a placeholder
    assert event["input"]["pod"]["spec"]["containers"][0]["args"] == [*WORKER_COMMAND, "<redacted>"]
    assert "/input/pod/spec/containers/0/args/4" in event["masked"]
    assert event["input"]["pod"]["metadata"]["annotations"]["dag_id"] == "etl"  # the rest stays for auditing

    signature = token.rsplit(".", 1)[1]
    received = {
        "the collector": b"".join(collector.raw_logs).decode(),
        "OPA's console": logging_opa.logs(),
        "the hook's log": caplog.text,
    }
    for where, text in received.items():
        assert token not in text and signature not in text, f"the token reached {where}"
    if mode == "dry-run":
        diff = caplog.text
        assert "dry-run: would change" in diff
        # the workload's line is among those the diff shows, as the placeholder (the last of the args)
        assert re.search(r'\n {11}"<redacted>"\n {9}\],\n {9}"env": ', diff), diff
