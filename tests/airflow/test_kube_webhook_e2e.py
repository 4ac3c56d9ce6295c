"""Airflow end to end with the admission webhooks on (issue 24): the paths where DAG code gets around the hook
are caught at the API server, and the paths through the hook are admitted unchanged.

The ``webhook`` fixture (tests/kube/webhook.py: real OPA over TLS serving policies/, webhooks registered
from ``airflow-opa-mutation admission manifests``' output) in the session's real kube-apiserver; the
namespaces carry the label the webhooks select (no Pod Security labels: the webhook is the only backstop).
Real Airflow 3.3 and the cncf.kubernetes provider, as in tests/airflow/test_kube_e2e.py, with one Airflow
home for the module (``airflow db migrate`` is its main cost) and one ``dag.test()`` for every operator:

- ``unhooked_transform`` / ``unhooked_escalate``: a KubernetesPodOperator whose DAG code unregisters the
  library's policy plugin in its own process. The pod is stored mutated at admission (the hardening, the
  audit record naming the ``admission`` layer), as the hook would have mutated it (``transform``, the same
  operator with the hook, is the reference); the privileged one is refused with the policy's message,
  which is the task's failure.
- ``exempted_escalate``: a privileged KubernetesPodOperator the configuration exempts by its ids
  (``EXEMPT``, in both layers' OPA): the hook, which trusts the ids the running task confirms, lets it
  through; the webhook takes the same ids from the pod's labels, untrusted for a requester the
  configuration does not trust, and refuses it. The two layers decide differently here by design.
- ``job_escalate``: a KubernetesJobOperator whose ``full_job_spec`` (merged after the hook) adds a privileged
  init container: refused at Job create; the Job never exists.
- The KubernetesExecutor: the real scheduler creates its worker pod in a selected namespace and the webhook
  admits it with an empty patch (stored as the hook left it, the audit record still the hook's); the task
  the hook denies never reaches the API server.

``airflow_local_settings.py`` registers a policy plugin that runs after every other ``pod_mutation_hook``
(pluggy ``trylast``) and records each pod as Airflow then sends it: what the hook produced, or, with the hook
unregistered, what reached the webhook untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_opa_mutation import AUDIT_ANNOTATION
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES
from ..kube.cluster import ControlPlane
from ..kube.fixtures import REPORT
from ..kube.test_admission import differences
from ..kube.webhook import Webhook, audit_of, comparable
from ..kube.webhooks import selected
from ..test_empty_values import api_decoded
from .conftest import run_airflow
from .test_kube_e2e import (
    EXECUTOR_DAG,
    WORKER_SA,
    Run,
    assert_stored_with_the_library_mutation,
    prepare_home,
    run_scheduler,
)

pytestmark = pytest.mark.airflow

EXECUTOR_NS = "wh-airflow-executor"
KPO_NS = "wh-airflow-kpo"
EXECUTOR_DAG_ID = "executor_webhook"

#: The configuration of both layers: one task of the KPO DAG exempt from every policy, by its ids.
EXEMPT = {"exempt": {"kpo-exempted": {"dag_id": "kpo_webhook", "task_id": "exempted_escalate"}}}

#: Records every pod after all the hooks, in ``$AIRFLOW_HOME/sent-pods.jsonl``: (process, pod as JSON).
RECORDING_LOCAL_SETTINGS = '''
import json, os, sys

from airflow import policies, settings


class _AfterEveryHook:
    @policies.hookimpl(trylast=True)
    def pod_mutation_hook(self, pod):
        from kubernetes.client import ApiClient

        record = {"process": sys.argv[1:2], "pod": ApiClient().sanitize_for_serialization(pod)}
        with open(os.path.join(os.environ["AIRFLOW_HOME"], "sent-pods.jsonl"), "a") as out:
            out.write(json.dumps(record) + "\\n")


settings.get_policy_plugin_manager().register(_AfterEveryHook(), name="record-sent-pods")
'''

KPO_DAG = '''
import json, os
from datetime import datetime

from kubernetes.client import models as k8s

from airflow import settings
from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG


def record_failure(context):
    error = context["exception"]
    record = {{"task_id": context["ti"].task_id, "type": type(error).__name__, "status": getattr(error, "status", None),
              "body": getattr(error, "body", None)}}
    with open(os.path.join(os.environ["AIRFLOW_HOME"], "failures.jsonl"), "a") as out:
        out.write(json.dumps(record) + "\\n")


class UnhookedPodOperator(KubernetesPodOperator):
    """DAG code runs in the task's process: it unregisters the library's policy plugin (the hook) while its
    pod is built and created."""

    def execute(self, context):
        manager = settings.get_policy_plugin_manager()
        plugin = manager.unregister(name="airflow_opa_mutation")
        assert plugin is not None, "the hook was not registered"
        try:
            return super().execute(context)
        finally:
            manager.register(plugin, name="airflow_opa_mutation")


#: Merged after the hook (reconcile_jobs): a privileged init container the hook never sees.
FULL_JOB_SPEC = k8s.V1Job(spec=k8s.V1JobSpec(template=k8s.V1PodTemplateSpec(spec=k8s.V1PodSpec(
    init_containers=[k8s.V1Container(name="setup", image="busybox:1.36",
                                     security_context=k8s.V1SecurityContext(privileged=True))],
    containers=[],
))))

CONNECTION = dict(namespace={namespace!r}, kubernetes_conn_id=None, in_cluster=False, config_file={kubeconfig!r},
                  on_failure_callback=record_failure)
POD = dict(image="ghcr.io/example/dbt:1.8.2", cmds=["dbt"], arguments=["run"], labels={{"team": "analytics"}},
           startup_timeout_seconds=3, startup_check_interval_seconds=1, on_finish_action="keep_pod",
           get_logs=False, **CONNECTION)

with DAG("kpo_webhook", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    KubernetesPodOperator(task_id="transform", name="dbt-run", **POD)
    UnhookedPodOperator(task_id="unhooked_transform", name="dbt-run", **POD)
    KubernetesPodOperator(task_id="exempted_escalate", name="dbt-root", container_security_context={{"privileged": True}},
                          **POD)
    UnhookedPodOperator(task_id="unhooked_escalate", name="dbt-root", container_security_context={{"privileged": True}},
                        **POD)
    KubernetesJobOperator(task_id="job_escalate", name="load", image="ghcr.io/example/loader:2.1", cmds=["load"],
                          full_job_spec=FULL_JOB_SPEC, wait_until_job_complete=False, **CONNECTION)
'''

#: One interpreter: the metadata DB and both DAGs serialized, then every operator under one ``dag.test()``.
PREPARE_AND_RUN_KPO = """
import argparse, sys
from airflow.utils import db
from airflow.cli.commands.dag_command import dag_reserialize

db.upgradedb()
dag_reserialize(argparse.Namespace(bundle_name=None))

sys.path.insert(0, "dags")
import kpo_webhook

run = kpo_webhook.dag.test()
report({"states": {ti.task_id: ti.state for ti in run.get_task_instances()}})
"""

_DENIED = 'admission webhook "mutate.pods.airflow-opa-mutation" denied the request: '
_PRIVILEGED = '[deny_privileged] container "base" is privileged'


@pytest.fixture(scope="module")
def hook_opa(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The hook's OPA: policies/ with EXEMPT."""
    config = tmp_path_factory.mktemp("hook-config") / "config.json"
    config.write_text(json.dumps({"airflow": {"pod": {"config": EXEMPT}}}))
    opa = LocalOpa([POLICIES, config]).start()
    yield opa
    opa.stop()


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, kube_cluster: ControlPlane, hook_opa: LocalOpa,
                 template_file: Path, webhook: Webhook) -> tuple[Path, dict[str, str]]:
    """The webhooks registered (EXEMPT), both namespaces selected, an AIRFLOW_HOME with both DAGs."""
    webhook.configure(EXEMPT)
    selected(kube_cluster, EXECUTOR_NS)
    kube_cluster.service_account(EXECUTOR_NS, WORKER_SA)
    selected(kube_cluster, KPO_NS)
    home = tmp_path_factory.mktemp("airflow-webhook-home")
    dags = {
        EXECUTOR_DAG_ID: EXECUTOR_DAG.replace("executor_e2e", EXECUTOR_DAG_ID),
        "kpo_webhook": KPO_DAG.format(namespace=KPO_NS, kubeconfig=str(kube_cluster.kubeconfig)),
    }
    env = prepare_home(home, kube_cluster, hook_opa.url, template_file, dags, EXECUTOR_NS,
                       RECORDING_LOCAL_SETTINGS)
    return home, env


def sent_pods(home: Path) -> list[dict[str, Any]]:
    """What RECORDING_LOCAL_SETTINGS recorded: each pod as Airflow sent it, with the process it was built in."""
    return [json.loads(line) for line in (home / "sent-pods.jsonl").read_text().splitlines()]


def failures(home: Path) -> dict[str, tuple[str, int | None, str | None]]:
    """task_id -> the exception the task failed with (its ``on_failure_callback``): type, and for an API error
    its HTTP status and the message of the API server's Status."""
    lines = (home / "failures.jsonl").read_text().splitlines()
    return {r["task_id"]: (r["type"], r["status"], r["body"] and json.loads(r["body"])["message"])
            for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def kpo_run(airflow_home: tuple[Path, dict[str, str]], kube_cluster: ControlPlane) -> dict[str, Any]:
    home, env = airflow_home
    result = run_airflow(PREPARE_AND_RUN_KPO, env, timeout=300)
    result["pods"] = {pod["metadata"]["labels"]["task_id"]: pod for pod in kube_cluster.list_pods(KPO_NS)}
    result["sent"] = {r["pod"]["metadata"]["labels"]["task_id"]: r["pod"] for r in sent_pods(home)
                      if r["pod"]["metadata"]["labels"].get("dag_id") == "kpo_webhook"}
    result["failures"] = failures(home)
    REPORT.setdefault("airflow", []).append(
        f"with the webhook: db migrate + dag.test() of 5 operators {result['_seconds']:.0f} s, "
        f"pods stored {len(result['pods'])} of 4 (two refused at admission), Job refused at admission"
    )
    return result


@pytest.fixture(scope="module")
def executor_run(airflow_home: tuple[Path, dict[str, str]], kpo_run: dict[str, Any],
                 kube_cluster: ControlPlane) -> Run:
    """The real scheduler on the executor DAG; ``kpo_run`` migrated the DB first."""
    run = run_scheduler(*airflow_home, kube_cluster, EXECUTOR_NS, EXECUTOR_DAG_ID)
    REPORT.setdefault("airflow", []).append(
        f"with the webhook: scheduler start to worker pod stored {run.seconds:.0f} s, pods {len(run.pods)} of 2"
    )
    return run


def as_listed(sent: dict[str, Any]) -> dict[str, Any]:
    """A sent pod as the API server lists it (items of a PodList carry no apiVersion or kind), without the
    empty lists and maps its decoding drops."""
    return {key: value for key, value in api_decoded(sent).items() if key not in ("apiVersion", "kind")}


def without_ids(pod: dict[str, Any]) -> dict[str, Any]:
    """``comparable`` without what differs between two tasks of one DAG run: the task_id label."""
    pod = comparable(pod)
    pod["metadata"]["labels"].pop("task_id")
    return pod


# -- KubernetesPodOperator and KubernetesJobOperator around the hook ------------------------------------------


def test_a_pod_built_without_the_hook_is_stored_mutated_by_the_webhook(kpo_run: dict[str, Any]):
    sent, stored = kpo_run["sent"]["unhooked_transform"], kpo_run["pods"]["unhooked_transform"]
    # the DAG code did get around the hook: Airflow sent the operator's pod unchanged ...
    assert AUDIT_ANNOTATION not in (sent["metadata"].get("annotations") or {})
    assert "securityContext" not in sent["spec"]["containers"][0] and "automountServiceAccountToken" not in sent["spec"]
    # ... and the API server stored it hardened, with the admission layer's record
    audit = assert_stored_with_the_library_mutation(stored)
    assert audit["layer"] == "admission"
    assert kpo_run["states"]["unhooked_transform"] == "failed"  # then waited for a kubelet that never comes
    # exactly as the hook mutates the same operator's pod (the hook's record names the same policies)
    reference = kpo_run["pods"]["transform"]
    assert audit_of(reference)["layer"] == "hook"  # type: ignore[index]
    assert without_ids(stored) == without_ids(reference)


def test_a_privileged_pod_built_without_the_hook_is_refused_and_the_task_fails_with_the_policy_message(
        kpo_run: dict[str, Any]):
    assert kpo_run["sent"]["unhooked_escalate"]["spec"]["containers"][0]["securityContext"] == {"privileged": True}
    assert "unhooked_escalate" not in kpo_run["pods"]
    assert kpo_run["states"]["unhooked_escalate"] == "failed"
    kind, status, message = kpo_run["failures"]["unhooked_escalate"]
    assert (kind, status) == ("ForbiddenException", 403)  # the kubernetes client's ApiException for a 403
    assert message.startswith(f"{_DENIED}denied by policy: {_PRIVILEGED}"), message


def test_an_exemption_the_hook_grants_a_running_task_is_not_granted_at_admission(kpo_run: dict[str, Any]):
    """The one case where the layers disagree, by design: the webhook cannot tell the task's process from
    any other holder of its credentials, so ids in labels buy nothing (docs/threat-model.md)."""
    sent = kpo_run["sent"]["exempted_escalate"]
    assert sent["spec"]["containers"][0]["securityContext"] == {"privileged": True}  # exempt: the hook let it be
    audit = audit_of(sent)  # the hook's record of an exempted pod: no policy changed it, the exemption named
    assert audit is not None and audit["layer"] == "hook" and audit["exemptions"] == ["exempt.kpo-exempted"], audit
    assert not audit["policies"], audit
    assert "exempted_escalate" not in kpo_run["pods"]
    kind, status, message = kpo_run["failures"]["exempted_escalate"]
    assert (kind, status) == ("ForbiddenException", 403)
    assert message.startswith(f"{_DENIED}denied by policy: {_PRIVILEGED}"), message


def test_a_job_whose_full_job_spec_adds_a_privileged_container_is_refused_at_create(
        kpo_run: dict[str, Any], kube_cluster: ControlPlane):
    # the hook judged (and hardened) the operator's pod template, which has no init container ...
    template = kpo_run["sent"]["job_escalate"]
    assert audit_of(template)["layer"] == "hook" and not template["spec"]["initContainers"]  # type: ignore[index]
    # ... the merged full_job_spec added one: the webhook refuses the Job, which never exists
    assert kpo_run["states"]["job_escalate"] == "failed"
    kind, status, message = kpo_run["failures"]["job_escalate"]
    assert (kind, status) == ("ForbiddenException", 403)
    assert message.startswith(f"{_DENIED}the pod template (spec.template) is denied by policy: "
                              '[deny_privileged] initContainer "setup" is privileged'), message
    jobs = kube_cluster.request("GET", f"/apis/batch/v1/namespaces/{KPO_NS}/jobs")
    assert jobs.ok and jobs.body["items"] == [], jobs
    assert set(kpo_run["pods"]) == {"transform", "unhooked_transform"}  # nothing of the refused operators


def test_a_pod_the_hook_mutated_is_admitted_unchanged(kpo_run: dict[str, Any]):
    """Convergence on the KubernetesPodOperator path: the stored pod is the one the hook produced."""
    sent, stored = kpo_run["sent"]["transform"], kpo_run["pods"]["transform"]
    assert audit_of(sent)["layer"] == "hook"  # type: ignore[index]
    assert differences(as_listed(sent), stored) == []
    assert stored["metadata"]["annotations"][AUDIT_ANNOTATION] == sent["metadata"]["annotations"][AUDIT_ANNOTATION]


# -- KubernetesExecutor --------------------------------------------------------------------------------------


def test_the_executor_worker_pod_is_admitted_with_an_empty_patch(airflow_home: tuple[Path, dict[str, str]],
                                                                 executor_run: Run):
    [stored] = [p for p in executor_run.pods if p["metadata"]["labels"].get("task_id") == "load"]
    [sent] = [r["pod"] for r in sent_pods(airflow_home[0])
              if r["process"] == ["scheduler"] and r["pod"]["metadata"]["labels"].get("task_id") == "load"]
    assert stored["metadata"]["namespace"] == EXECUTOR_NS and stored["spec"]["serviceAccountName"] == WORKER_SA
    audit = assert_stored_with_the_library_mutation(stored)
    # every admission patch rewrites the record with layer "admission": the hook's record, byte for byte,
    # means the webhook changed nothing; and nothing the hook produced was lost or changed
    assert audit["layer"] == "hook"
    assert stored["metadata"]["annotations"][AUDIT_ANNOTATION] == sent["metadata"]["annotations"][AUDIT_ANNOTATION]
    assert f"request_uid={audit['request_uid']}" in executor_run.output
    assert differences(as_listed(sent), stored) == []


def test_the_executor_task_the_hook_denies_never_reaches_the_api_server(executor_run: Run):
    assert executor_run.states["escalate"] == "failed"
    assert [p["metadata"]["labels"]["task_id"] for p in executor_run.pods] == ["load"]
    [failure] = [line for line in executor_run.output.splitlines() if "Pod Mutation Hook failed for the task" in line]
    assert "task_id='escalate'" in failure and _PRIVILEGED in failure
    assert "admission webhook" not in executor_run.output  # refused by the hook, before any request
