"""Issue 13, finding 1: spoofed Airflow ids, through real Airflow 3.3 and real OPA.

On the KubernetesExecutor path the truth is what the scheduler passed to ``PodGenerator.construct_pod``;
on the KubernetesPodOperator path, the running task's context. A ``pod_override`` or operator labels
claiming ``dag_id=ops_debug`` change neither, and get no exemption keyed on that dag_id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import PodDenied
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES
from .conftest import ECHO_ANNOTATION, KUBECONFIG, airflow_env, construct, echoed, make_kpo, run_airflow, task_context

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


# -- DAG code in a real task process ------------------------------------------------------------------------

#: A DAG whose tasks forge an executor pod for the DAG ``ops_debug``: each empties Airflow's task-context
#: stack (what ``get_current_context()`` reads), erases the further marks of a task process named in
#: ``erase``, calls ``PodGenerator.construct_pod`` itself, puts everything back for the task runner and
#: records the ``input.airflow`` the hook sent. ``at_parse`` does it from the DAG file's top level while
#: the task runner parses the file for that task.
FORGING_DAG = f'''
import json
import os
from datetime import datetime

from airflow.sdk import DAG, get_parsing_context, task


def forge(case, erase):
    from kubernetes.client import models as k8s
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from airflow.sdk.definitions._internal.contextmanager import _CURRENT_CONTEXT
    from airflow.sdk.execution_time import task_runner

    contexts = list(_CURRENT_CONTEXT)
    comms = task_runner.__dict__.get("SUPERVISOR_COMMS")
    env = {{key: value for key, value in os.environ.items() if key.startswith("AIRFLOW_CTX_")}}
    _CURRENT_CONTEXT.clear()
    if "supervisor_comms" in erase:
        task_runner.__dict__.pop("SUPERVISOR_COMMS", None)
    if "environment" in erase:
        for key in env:
            del os.environ[key]
    try:
        pod = PodGenerator.construct_pod(
            dag_id="ops_debug", task_id="debug", pod_id="ops-debug-0", try_number=1,
            kube_image="apache/airflow:3.3.2", date=None, args=["airflow", "tasks", "run", "ops_debug", "debug"],
            pod_override_object=None, namespace="airflow", scheduler_job_id="42", run_id="manual__forged",
            map_index=-1, with_mutation_hook=True,
            base_worker_pod=k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base")])),
        )
    finally:
        _CURRENT_CONTEXT[:] = contexts
        if comms is not None:
            task_runner.SUPERVISOR_COMMS = comms
        os.environ.update(env)
    record(case, pod)


def forge_kpo(case):
    """Push a task context naming ops_debug and build a KubernetesPodOperator pod labelled for it."""
    from types import SimpleNamespace
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.definitions._internal.contextmanager import _CURRENT_CONTEXT

    ti = SimpleNamespace(dag_id="ops_debug", task_id="debug", run_id="manual__forged", try_number=1, map_index=-1)
    forged = {{"ti": ti, "task_instance": ti, "run_id": "manual__forged", "dag": SimpleNamespace()}}
    operator = KubernetesPodOperator(task_id="debug", image="busybox:1.36", namespace="data", name="debug",
                                     kubernetes_conn_id=None, config_file=os.environ["AOM_KUBECONFIG"])
    _CURRENT_CONTEXT.append(forged)
    try:
        pod = operator.build_pod_request_obj(forged)
    finally:
        _CURRENT_CONTEXT.pop()
    record(case, pod)


def record(case, pod):
    with open(os.environ["AOM_FORGED"], "a") as out:
        out.write(json.dumps({{"case": case, "airflow": json.loads(pod.metadata.annotations["{ECHO_ANNOTATION}"])}}) + "\\n")


if get_parsing_context().task_id == "at_parse":
    forge("at_parse", [])

with DAG("forging", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def run(case, erase):
        forge(case, erase)

    run.override(task_id="context_stack")("context_stack", [])
    run.override(task_id="and_supervisor_comms")("and_supervisor_comms", ["supervisor_comms"])
    run.override(task_id="and_environment")("and_environment", ["supervisor_comms", "environment"])

    @task
    def at_parse():
        pass

    at_parse()

    @task
    def kpo_pushed_context():
        forge_kpo("kpo_pushed_context")

    kpo_pushed_context()
'''

#: Runs each task of FORGING_DAG the way the LocalExecutor and a KubernetesExecutor worker pod do:
#: ``supervise_task`` forks the task runner, which parses the DAG file and runs the task. The Execution API
#: is Airflow's own dry-run handler (``noop_handler``), with the fields 3.3.2's ``TIRunContext`` requires.
RUN_FORGING_TASKS = """
import json, uuid
import httpx
from airflow.sdk.api.client import Client, noop_handler
from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance
from airflow.sdk.execution_time.supervisor import supervise_task
# Loaded before the fork, as in a LocalExecutor's scheduler: each task process starts with the provider.
import airflow.providers.cncf.kubernetes.operators.pod


def execution_api(request):
    response = noop_handler(request)
    if request.url.path.endswith("/run"):
        body = json.loads(response.read())
        body["dag_run"].update(data_interval_start=None, data_interval_end=None, end_date=None, state="running",
                               partition_key=None)
        return httpx.Response(200, json=body)
    return response


exits = {}
for task_id in ("context_stack", "and_supervisor_comms", "and_environment", "at_parse", "kpo_pushed_context"):
    ti = TaskInstance(id=uuid.uuid4(), task_id=task_id, dag_id="forging", run_id="manual__2026-12-07",
                      try_number=1, dag_version_id=uuid.uuid4())
    client = Client(base_url=None, dry_run=True, token="", transport=httpx.MockTransport(execution_api))
    exits[task_id] = supervise_task(ti=ti, bundle_info=BundleInfo(name="dags-folder"), dag_rel_path="forging.py",
                                    token="", client=client, subprocess_logs_to_stdout=True)
report({"exits": exits})
"""


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory, echo_opa: LocalOpa) -> dict[str, dict[str, Any]]:
    """``input.airflow`` of each forged pod, by case, from real task processes."""
    home = tmp_path_factory.mktemp("forging-home")
    (home / "dags").mkdir()
    (home / "dags" / "forging.py").write_text(FORGING_DAG)
    results = home / "forged.jsonl"
    (home / "kubeconfig").write_text(KUBECONFIG)  # never contacted
    result = run_airflow(RUN_FORGING_TASKS, airflow_env(
        home, AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__OPA_MUTATION__URL=echo_opa.url, AOM_FORGED=str(results),
        AOM_KUBECONFIG=str(home / "kubeconfig"),
        AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="1",  # the supervisor notices a finished task sooner
    ), timeout=300)
    assert set(result["exits"].values()) == {0}, result["_output"][-6000:]
    lines = [json.loads(line) for line in Path(results).read_text().splitlines()]
    return {line["case"]: line["airflow"] for line in lines}


@pytest.mark.parametrize("case", ["context_stack", "and_supervisor_comms", "at_parse"])
def test_construct_pod_called_by_dag_code_in_a_real_task_process_is_not_the_scheduler(forged, case):
    """Issue 22 item 8: DAG code that empties the task-context stack (and deletes the task runner's
    ``SUPERVISOR_COMMS``, or runs at parse time) and calls construct_pod itself gets untrusted ids."""
    seen = forged[case]
    assert seen["dag_id"] == "ops_debug"  # what the pod says ...
    assert {"dag_id", "task_id", "launcher"} <= set(seen["untrusted"])  # ... and nobody vouches for it


def test_dag_code_that_erases_every_mark_of_a_task_process_is_believed(forged):
    """The limit the threat model states: code in the same process can undo whatever marks a task process
    (context stack, ``SUPERVISOR_COMMS``, the ``AIRFLOW_CTX_*`` variables); the ids it forges then count
    as the scheduler's. Task processes are untrusted; Kubernetes admission is the backstop."""
    seen = forged["and_environment"]
    assert (seen["dag_id"], seen["launcher"]) == ("ops_debug", "kubernetes_executor")
    assert "untrusted" not in seen


def test_dag_code_that_pushes_a_task_context_chooses_its_kpo_pods_ids(forged):
    """The same limit on the KubernetesPodOperator path: the running task's context is what DAG code in the
    task process says it is. Its ids are a boundary no more than the operator path itself is."""
    seen = forged["kpo_pushed_context"]
    assert (seen["dag_id"], seen["task_id"], seen["launcher"]) == ("ops_debug", "debug", "kubernetes_pod_operator")
    assert "untrusted" not in seen
