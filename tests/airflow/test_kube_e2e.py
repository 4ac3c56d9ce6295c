"""Airflow end to end against a real kube-apiserver (tests/kube/cluster.py): real Airflow 3.3 and the
cncf.kubernetes provider create their pods in it, through the hook and the shipped policies in a real OPA.

- KubernetesExecutor: a real ``airflow scheduler`` (sqlite metadata DB, its own AIRFLOW_HOME, the
  ``[kubernetes_executor]`` section pointing at the fixture's kubeconfig) runs a DAG of two tasks. The
  worker pod of ``load`` is stored mutated, with the audit annotation; ``escalate`` asks for a privileged
  container through ``executor_config``, is denied by the hook, fails with the policy's reason in the
  scheduler's log, and no pod of it ever reaches the API server.
- The denial's reason in Airflow itself: a real ``airflow api-server`` on the same metadata DB, asked by a
  user of the simple auth manager's ``viewer`` role (a DAG author with no access to the scheduler's log),
  returns the denied try's event log entry ``opa_mutation.denied`` with the policy and its message.
- KubernetesPodOperator: ``dag.test()`` runs a DAG of two operators (``config_file`` = the kubeconfig,
  ``in_cluster=False``, a 3 s startup timeout: no kubelet will ever start the pod, so the task then fails,
  and ``keep_pod`` leaves the pod to inspect); the denied one is never created. ``dry_run()`` prints the
  same mutation the API server stored.

No kubelet or controller-manager runs: pods stay Pending, which is enough, since what we test is what the
API server accepts and stores. Namespaces enforce Pod Security ``baseline``. One Airflow home per module:
``airflow db migrate`` costs ~20-30 s, so it is done once and shared by both paths (one after the other:
sqlite takes one writer).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from airflow_opa_mutation import AUDIT_ANNOTATION

from ..kube.cluster import ControlPlane
from ..kube.fixtures import REPORT
from .conftest import airflow_env, run_airflow

pytestmark = pytest.mark.airflow

EXECUTOR_NS = "airflow-executor"
KPO_NS = "airflow-kpo"
WORKER_SA = "airflow-worker"  # the executor's pod template names it; no controller creates it here

EXECUTOR_DAG = '''
from datetime import datetime

from kubernetes.client import models as k8s

from airflow.sdk import dag, task

PRIVILEGED = {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[
    k8s.V1Container(name="base", security_context=k8s.V1SecurityContext(privileged=True)),
]))}


@dag(schedule="@once", start_date=datetime(2026, 1, 1), catchup=False)
def executor_e2e():
    @task
    def load():
        return "never runs: no kubelet"

    @task(executor_config=PRIVILEGED)
    def escalate():
        return "never runs: denied"

    load()
    escalate()


executor_e2e()
'''

KPO_DAG = '''
from datetime import datetime

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

COMMON = dict(
    image="ghcr.io/example/dbt:1.8.2", namespace={namespace!r}, cmds=["dbt"], arguments=["run"],
    labels={{"team": "analytics"}}, kubernetes_conn_id=None, in_cluster=False, config_file={kubeconfig!r},
    startup_timeout_seconds=3, startup_check_interval_seconds=1, on_finish_action="keep_pod", get_logs=False,
)

with DAG("kpo_e2e", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    KubernetesPodOperator(task_id="transform", name="dbt-run", **COMMON)
    KubernetesPodOperator(task_id="escalate", name="dbt-root", container_security_context={{"privileged": True}},
                          **COMMON)
'''

#: ``airflow_local_settings.py`` of the Airflow home: a second ``pod_mutation_hook`` that changes nothing and
#: records, for every pod, the ids the hook's logic confirms in that process and the marks of a task process
#: it looks at (``_airflow_context.in_task_process``), in ``$AIRFLOW_HOME/hook-calls.jsonl``.
RECORDING_LOCAL_SETTINGS = '''
import json, os, sys


def pod_mutation_hook(pod):
    from airflow_opa_mutation import _airflow_context

    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    record = {
        "pod": pod.metadata.name,
        "airflow": _airflow_context.airflow_context(pod.metadata.labels or {}, pod.metadata.annotations or {}),
        "in_task_process": _airflow_context.in_task_process(),
        "argv": sys.argv,
        "task_runner_loaded": runner is not None,
        "supervisor_comms": getattr(runner, "SUPERVISOR_COMMS", None) is not None,
        "task_env": sorted(key for key in os.environ if key.startswith("AIRFLOW_CTX_")),
    }
    with open(os.path.join(os.environ["AIRFLOW_HOME"], "hook-calls.jsonl"), "a") as out:
        out.write(json.dumps(record) + "\\n")
'''

#: One interpreter: the metadata DB and both DAGs serialized (what ``airflow db migrate`` and ``airflow dags
#: reserialize`` do), then the KubernetesPodOperator DAG under ``dag.test()`` and its operators' dry runs.
PREPARE_AND_RUN_KPO = """
import argparse, contextlib, io, sys
from airflow.utils import db
from airflow.cli.commands.dag_command import dag_reserialize

db.upgradedb()
dag_reserialize(argparse.Namespace(bundle_name=None))

sys.path.insert(0, "dags")
import kpo_e2e

run = kpo_e2e.dag.test()
dry_runs = {}
for task in kpo_e2e.dag.tasks:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            task.dry_run()
    except Exception as exc:
        printed.write(f"RAISED {type(exc).__name__}: {exc}")
    dry_runs[task.task_id] = printed.getvalue()
report({"states": {ti.task_id: ti.state for ti in run.get_task_instances()}, "dry_runs": dry_runs,
        "records": RECORDS})
"""


@dataclass
class Run:
    """What one Airflow run left behind: task states, the pods in its namespace, its output."""

    states: dict[str, str]
    pods: list[dict[str, Any]]
    output: str
    seconds: float
    events: list[tuple[str, str, str]]  # the metadata DB's event log: (event, task_id, extra)


def prepare_home(home: Path, kube_cluster: ControlPlane, opa_url: str, template_file: Path,
                 dags: dict[str, str], executor_namespace: str, local_settings: str) -> dict[str, str]:
    """Write ``dags`` (file stem -> source) and ``airflow_local_settings.py`` into the AIRFLOW_HOME ``home``;
    the environment pointing Airflow at the control plane (the executor at ``executor_namespace``) and OPA."""
    folder = home / "dags"
    folder.mkdir()
    for stem, source in dags.items():
        (folder / f"{stem}.py").write_text(source)
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(local_settings)
    env = airflow_env(
        home,
        AIRFLOW__CORE__EXECUTOR="KubernetesExecutor",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(folder),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER="False",
        AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE=str(kube_cluster.kubeconfig),
        AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE=executor_namespace,
        AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE=str(template_file),
        AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY="apache/airflow",
        AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG="3.3.2",
        AIRFLOW__OPA_MUTATION__URL=opa_url,
    )
    env.pop("KUBECONFIG", None)  # only the configured kubeconfig may be used
    return env


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, kube_cluster: ControlPlane, library_opa: Any,
                 template_file: Path) -> tuple[Path, dict[str, str]]:
    """An AIRFLOW_HOME with both DAGs, and the environment pointing Airflow at the control plane and OPA."""
    kube_cluster.namespace(EXECUTOR_NS, enforce="baseline")
    kube_cluster.service_account(EXECUTOR_NS, WORKER_SA)
    kube_cluster.namespace(KPO_NS, enforce="baseline")
    home = tmp_path_factory.mktemp("airflow-kube-home")
    dags = {"executor_e2e": EXECUTOR_DAG,
            "kpo_e2e": KPO_DAG.format(namespace=KPO_NS, kubeconfig=str(kube_cluster.kubeconfig))}
    env = prepare_home(home, kube_cluster, library_opa.url, template_file, dags, EXECUTOR_NS,
                       RECORDING_LOCAL_SETTINGS)
    return home, env


@pytest.fixture(scope="module")
def kpo_run(airflow_home: tuple[Path, dict[str, str]], kube_cluster: ControlPlane) -> dict[str, Any]:
    _, env = airflow_home
    result = run_airflow(PREPARE_AND_RUN_KPO, env, timeout=300)
    result["pods"] = kube_cluster.list_pods(KPO_NS)
    REPORT.setdefault("airflow", []).append(
        f"KubernetesPodOperator: db migrate + dag.test() {result['_seconds']:.0f} s, "
        f"pods created {len(result['pods'])} of 2 (one denied)"
    )
    return result


def _query(database: Path, sql: str, *params: str) -> list[Any]:
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as connection:
        return connection.execute(sql, params).fetchall()


def _task_states(database: Path, dag_id: str) -> dict[str, str]:
    return dict(_query(database, "SELECT task_id, state FROM task_instance WHERE dag_id = ?", dag_id))


def run_scheduler(home: Path, env: dict[str, str], kube_cluster: ControlPlane, namespace: str, dag_id: str,
                  events: tuple[str, ...] = ()) -> Run:
    """``airflow scheduler`` until the worker pod of ``load`` is stored in ``namespace`` and ``escalate`` has
    failed (the DAG ``dag_id``: EXECUTOR_DAG's two tasks), then killed. The DB must be migrated already.

    ``events``: event log entries of the DAG to wait for as well, a few scheduler loops at most (the
    scheduler saves its executor's task events just after the states it reports)."""
    log = home / "scheduler.log"
    started = time.monotonic()
    with log.open("wb") as out:
        # Own process group: none of the scheduler's children (executor manager, pod watcher) can outlive it.
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "airflow", "scheduler", "--skip-serve-logs"],
            env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        states: dict[str, str] = {}
        pods: list[dict[str, Any]] = []
        grace: float | None = None
        while time.monotonic() < deadline and scheduler.poll() is None:
            states = _task_states(home / "airflow.db", dag_id)
            pods = kube_cluster.list_pods(namespace)
            if states.get("escalate") == "failed" and pods:
                grace = grace or time.monotonic() + 10
                seen = {e for (e,) in _query(home / "airflow.db", "SELECT event FROM log WHERE dag_id = ?", dag_id)}
                if set(events) <= seen or time.monotonic() > grace:
                    break
            time.sleep(1)
        seconds = time.monotonic() - started
    finally:
        # SIGKILL, the whole group: a graceful stop (SIGTERM) waits 20 s for the executor's pod watcher,
        # blocked in its watch request, and proves nothing here. The metadata DB is thrown away.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(scheduler.pid, signal.SIGKILL)
        scheduler.wait()
    output = log.read_text(errors="replace")
    assert states.get("escalate") == "failed" and pods, (
        f"after {seconds:.0f} s: states {states}, {len(pods)} pods; scheduler exit {scheduler.returncode}, "
        f"log tail:\n{output[-6000:]}"
    )
    database = home / "airflow.db"
    events = _query(database, "SELECT event, task_id, extra FROM log WHERE dag_id = ?", dag_id)
    return Run(_task_states(database, dag_id), kube_cluster.list_pods(namespace), output, seconds,
               [tuple(event) for event in events])


@pytest.fixture(scope="module")
def executor_run(airflow_home: tuple[Path, dict[str, str]], kpo_run: dict[str, Any],
                 kube_cluster: ControlPlane) -> Run:
    """The scheduler on EXECUTOR_DAG; ``kpo_run`` migrated the DB first."""
    run = run_scheduler(*airflow_home, kube_cluster, EXECUTOR_NS, "executor_e2e", events=("opa_mutation.denied",))
    REPORT.setdefault("airflow", []).append(
        f"KubernetesExecutor: scheduler start to worker pod stored {run.seconds:.0f} s, "
        f"pods created {len(run.pods)} of 2 (one denied)"
    )
    return run


VIEWER, VIEWER_PASSWORD = "author", "not-a-secret-password"


@pytest.fixture(scope="module")
def api_server(airflow_home: tuple[Path, dict[str, str]], executor_run: Run) -> Any:
    """A real ``airflow api-server`` (core API) on the module's metadata DB, started after the scheduler
    stopped; yields its URL and a session holding the bearer token of a ``viewer`` of the simple auth
    manager, obtained through ``POST /auth/token``."""
    home, env = airflow_home
    (home / "passwords.json").write_text(json.dumps({VIEWER: VIEWER_PASSWORD}))
    env = env | {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{VIEWER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-of-this-module",
    }
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with (home / "api-server.log").open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port),
             "--apps", "core", "--workers", "1"],
            env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (home / "api-server.log").read_text(errors="replace")[-6000:]
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/api/v2/monitor/health", timeout=5).ok:
                    break
            assert time.monotonic() < deadline, (home / "api-server.log").read_text(errors="replace")[-6000:]
            time.sleep(1)
        login = requests.post(f"{url}/auth/token", json={"username": VIEWER, "password": VIEWER_PASSWORD},
                              timeout=30)
        assert login.status_code == 201, login.text
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield url, session
        session.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


#: What the library's security_context policy gives a container that asked for nothing (Kubernetes JSON).
HARDENED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def camel(value: Any) -> Any:
    """The kubernetes client's ``to_dict()`` keys (what ``dry_run()`` prints) as Kubernetes JSON spells them."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def assert_stored_with_the_library_mutation(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the API server stored it (Kubernetes JSON) carries the library's hardening and the audit
    annotation; returns the decoded annotation."""
    base = pod["spec"]["containers"][0]
    assert base["name"] == "base"
    assert base["securityContext"].items() >= HARDENED.items()
    assert pod["spec"]["automountServiceAccountToken"] is False
    audit: dict[str, Any] = json.loads(pod["metadata"]["annotations"][AUDIT_ANNOTATION])
    assert {"security_context", "service_account_token"} <= set(audit["policies"])
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]  # no scheduler, no kubelet
    return audit


# -- KubernetesExecutor ---------------------------------------------------------------------------------


def test_executor_worker_pod_is_stored_mutated_with_the_audit_annotation(executor_run: Run):
    [pod] = [p for p in executor_run.pods if p["metadata"]["labels"].get("task_id") == "load"]
    audit = assert_stored_with_the_library_mutation(pod)
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert labels["kubernetes_executor"] == "True" and labels["dag_id"] == "executor_e2e"
    assert labels["team"] == "data-platform"  # the pod template file
    assert annotations["task_id"] == "load" and annotations["run_id"] == "scheduled__2026-01-01T00:00:00+00:00"
    assert pod["spec"]["serviceAccountName"] == WORKER_SA
    assert pod["metadata"]["namespace"] == EXECUTOR_NS
    # the stored object is the one this scheduler's hook decided on: its log names the same request
    assert f"request_uid={audit['request_uid']}" in executor_run.output
    assert executor_run.states["load"] == "queued"  # waits for a kubelet that never comes


def hook_calls(home: Path) -> list[dict[str, Any]]:
    """What RECORDING_LOCAL_SETTINGS recorded, one entry per pod handed to the hook."""
    return [json.loads(line) for line in (home / "hook-calls.jsonl").read_text().splitlines()]


def test_the_real_scheduler_confirms_the_executor_ids_and_shows_no_mark_of_a_task_process(
        airflow_home: tuple[Path, dict[str, str]], executor_run: Run):
    """Issue 22 item 8: the marks that make construct_pod untrusted in a task process are absent from the
    real scheduler, whose worker pods keep ids the scheduler vouches for."""
    [call] = [c for c in hook_calls(airflow_home[0]) if c["airflow"].get("task_id") == "load"]
    assert call["argv"][1:2] == ["scheduler"]
    assert not call["in_task_process"] and not call["supervisor_comms"] and not call["task_env"]
    assert (call["airflow"]["dag_id"], call["airflow"]["launcher"]) == ("executor_e2e", "kubernetes_executor")
    assert "untrusted" not in call["airflow"]


def test_executor_denied_task_fails_with_the_reason_in_the_scheduler_log_and_no_pod(executor_run: Run):
    assert executor_run.states["escalate"] == "failed"
    assert [p["metadata"]["labels"]["task_id"] for p in executor_run.pods] == ["load"]  # nothing of escalate
    [failure] = [line for line in executor_run.output.splitlines() if "Pod Mutation Hook failed for the task" in line]
    assert "task_id='escalate'" in failure
    assert '[deny_privileged] container "base" is privileged' in failure
    assert f"{EXECUTOR_NS}/executor-e2e-escalate-" in failure  # the pod the hook refused, named
    # Airflow's own event log entry records the failure, but not its reason: PodMutationHookException, which
    # the executor hands on as the failure's info, has no message of its own (the reason is its __cause__).
    # The hook's own entry carries it (test_executor_denial_reason_is_in_the_denied_trys_event_log_...).
    [(_, _, extra)] = [e for e in executor_run.events if e[:2] == ("state mismatch", "escalate")]
    assert "finished with state failed" in extra and extra.rstrip().endswith("Extra info:")


def test_executor_denial_reason_is_in_the_denied_trys_event_log_through_the_rest_api(api_server: Any,
                                                                                    executor_run: Run):
    """Issue 26 item 1: what a DAG author sees in Airflow (the task try's Audit Log tab is this API)."""
    url, session = api_server
    run_id = "scheduled__2026-01-01T00:00:00+00:00"
    ti = session.get(f"{url}/api/v2/dags/executor_e2e/dagRuns/{run_id}/taskInstances/escalate", timeout=30)
    assert ti.status_code == 200, ti.text
    assert ti.json()["state"] == "failed"
    try_number = ti.json()["try_number"]
    logs = session.get(f"{url}/api/v2/eventLogs", timeout=30, params={
        "dag_id": "executor_e2e", "task_id": "escalate", "run_id": run_id, "try_number": try_number,
        "map_index": -1})
    assert logs.status_code == 200, logs.text
    entries = {entry["event"]: entry for entry in logs.json()["event_logs"]}
    assert "state mismatch" in entries  # Airflow's own entry, without the reason
    denied = entries["opa_mutation.denied"]
    assert (denied["try_number"], denied["map_index"]) == (try_number, -1)
    head, *reasons, where = denied["extra"].splitlines()  # plain text: the UI's Audit Log shows it as it is
    assert head == "denied by policy:"
    assert '[deny_privileged] container "base" is privileged;' in reasons
    assert {reason.split("]")[0] for reason in reasons} == {"[deny_privileged", "[pod_security"}  # every reason
    assert where.startswith(f"(pod {EXECUTOR_NS}/executor-e2e-escalate-")
    # the same request as the scheduler's log line about it
    request_uid = re.search(r"request_uid ([0-9a-f-]+)", where).group(1)  # type: ignore[union-attr]
    assert f"request_uid={request_uid}" in executor_run.output
    # nothing of the worker's command line (its Execution API token) is recorded
    assert "--json-string" not in denied["extra"] and "token" not in denied["extra"]
    # the task that was let through has no such entry
    load = session.get(f"{url}/api/v2/eventLogs", timeout=30,
                       params={"dag_id": "executor_e2e", "task_id": "load", "event": "opa_mutation.denied"})
    assert load.status_code == 200 and load.json()["total_entries"] == 0


# -- KubernetesPodOperator ------------------------------------------------------------------------------


def test_kpo_pod_is_stored_mutated_and_the_task_times_out_waiting_for_a_kubelet(kpo_run: dict[str, Any]):
    [pod] = kpo_run["pods"]
    assert_stored_with_the_library_mutation(pod)
    labels = pod["metadata"]["labels"]
    assert (labels["dag_id"], labels["task_id"]) == ("kpo_e2e", "transform")
    assert labels["kubernetes_pod_operator"] == "True" and labels["airflow_kpo_in_cluster"] == "False"
    assert labels["team"] == "analytics"
    assert pod["metadata"]["namespace"] == KPO_NS and pod["metadata"]["name"].startswith("dbt-run-")
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/example/dbt:1.8.2"
    assert kpo_run["states"]["transform"] == "failed"
    assert "PodLaunchTimeoutException" in kpo_run["_output"]


def test_kpo_pods_are_built_in_a_process_marked_as_a_task_with_the_running_tasks_ids(
        airflow_home: tuple[Path, dict[str, str]], kpo_run: dict[str, Any]):
    """``dag.test()`` runs the task in its own process, as the task runner does: a task context and the task
    runner's ``SUPERVISOR_COMMS`` are set, and the operator's ids come from that context."""
    calls = [c for c in hook_calls(airflow_home[0]) if c["airflow"].get("dag_id") == "kpo_e2e"]  # not dry runs
    assert "transform" in {c["airflow"]["task_id"] for c in calls}
    for call in calls:
        assert call["in_task_process"] and call["supervisor_comms"] and call["task_env"]
        assert call["airflow"]["launcher"] == "kubernetes_pod_operator" and "untrusted" not in call["airflow"]


def test_kpo_denied_pod_is_never_created_and_the_task_fails_with_the_reason(kpo_run: dict[str, Any]):
    assert kpo_run["states"]["escalate"] == "failed"
    assert all(p["metadata"]["labels"]["task_id"] != "escalate" for p in kpo_run["pods"])
    # the task's log: every reason, each with its policy
    raised = [line for line in kpo_run["_output"].splitlines()
              if "PodDenied: denied by policy: " in line and not line.startswith("AOM-RESULT")]
    assert raised and all('[deny_privileged] container "base" is privileged' in line and "[pod_security] " in line
                          for line in raised), raised
    assert any(level == "ERROR" and "[deny_privileged]" in message and "task_id=escalate" in message
               for level, message in kpo_run["records"])


def test_kpo_dry_run_prints_the_mutation_the_api_server_stored(kpo_run: dict[str, Any]):
    printed = kpo_run["dry_runs"]["transform"]
    dry = yaml.safe_load(printed[printed.index("api_version: v1"):])
    [stored] = kpo_run["pods"]
    printed_context = camel(dry["spec"]["containers"][0]["security_context"])
    assert printed_context.items() >= HARDENED.items()
    assert printed_context == stored["spec"]["containers"][0]["securityContext"]
    assert dry["spec"]["automount_service_account_token"] is stored["spec"]["automountServiceAccountToken"] is False
    printed_audit = json.loads(dry["metadata"]["annotations"][AUDIT_ANNOTATION])
    stored_audit = json.loads(stored["metadata"]["annotations"][AUDIT_ANNOTATION])
    assert printed_audit["policies"] == stored_audit["policies"]
    # the privileged operator's dry run is refused by the same policy, before anything is printed
    assert "RAISED PodDenied: denied by policy: [deny_privileged]" in kpo_run["dry_runs"]["escalate"]


def test_airflow_never_sent_a_pod_the_hook_denied(kube_cluster: ControlPlane, executor_run: Run,
                                                  kpo_run: dict[str, Any]):
    """Across both namespaces, every stored pod carries the audit annotation, and none is privileged."""
    pods = kube_cluster.list_pods(EXECUTOR_NS) + kube_cluster.list_pods(KPO_NS)
    assert len(pods) == 2
    for pod in pods:
        assert AUDIT_ANNOTATION in pod["metadata"]["annotations"]
        assert not any((c.get("securityContext") or {}).get("privileged") for c in pod["spec"]["containers"])
