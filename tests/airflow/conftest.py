"""End to end against real Airflow 3.3 and the cncf.kubernetes provider, and real OPA servers (no mocks).

Airflow reads AIRFLOW_HOME and AIRFLOW_CONFIG once, at ``import airflow``; this conftest is loaded before
any test module here imports Airflow, so the whole session gets a throw-away AIRFLOW_HOME (no
``airflow_local_settings.py`` of the developer's leaks in). Tests that need their own airflow.cfg or
``airflow_local_settings.py`` run Airflow in a subprocess with its own environment (``run_airflow``).

OPA servers are session-scoped: ``library_opa`` serves the shipped ``policies/`` folder (with console
decision logs, so responses carry a ``decision_id``), ``echo_opa`` copies ``input.airflow`` into an
annotation, ``counting_opa`` counts how often it was applied, and ``stopped_opa_url`` is where an OPA
answered a moment ago and no longer does.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import MutationHook, Settings
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES, REPO, decision_policy

_SESSION_HOME = tempfile.mkdtemp(prefix="aom-airflow-home-")
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _SESSION_HOME
os.environ["AIRFLOW_CONFIG"] = os.path.join(_SESSION_HOME, "airflow.cfg")
os.environ.pop("_AIRFLOW__AS_LIBRARY", None)  # Airflow must initialise (and load policy plugins) on import

ECHO_ANNOTATION = "echo/airflow"

#: ``input.airflow`` copied into the annotation ECHO_ANNOTATION (the pod's other annotations kept).
ECHO_POLICY = decision_policy(f"""
    annotations := object.get(input.pod.metadata, "annotations", {{}})

    decision := {{"patch": [{{
        "op": "add",
        "path": "/metadata/annotations",
        "value": object.union(annotations, {{"{ECHO_ANNOTATION}": json.marshal(input.airflow)}}),
    }}]}}
""")

#: Sets label ``applied`` to one more than it was: applying the decision twice would show as "2".
COUNTING_POLICY = decision_policy("""
    decision := {"patch": [{"op": "add", "path": "/metadata/labels/applied", "value": sprintf("%d", [n])}]} if {
        n := to_number(object.get(input.pod.metadata.labels, "applied", "0")) + 1
    }
""")


@pytest.fixture(scope="session", autouse=True)
def _airflow_initialised() -> None:
    """``import airflow`` before any test: it configures logging (replacing the root logger's handlers), which
    must not happen in the middle of a test that captures logs with ``caplog``."""
    import airflow  # noqa: F401


def _serve(factory: pytest.TempPathFactory, name: str, rego: Mapping[str, str] | None = None,
           *, paths: list[Path] | None = None, args: list[str] | None = None) -> LocalOpa:
    folder = factory.mktemp(name)
    for filename, text in (rego or {}).items():
        (folder / filename).write_text(textwrap.dedent(text))
    return LocalOpa(([folder] if rego else []) + list(paths or []), args=args or []).start()


@pytest.fixture(scope="session")
def library_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOpa]:
    """The shipped policy library (``policies/``), with decision logs on the console."""
    opa = _serve(tmp_path_factory, "library", paths=[POLICIES], args=["--set", "decision_logs.console=true"])
    yield opa
    opa.stop()


@pytest.fixture(scope="session")
def echo_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOpa]:
    opa = _serve(tmp_path_factory, "echo", ECHO_POLICY)
    yield opa
    opa.stop()


@pytest.fixture(scope="session")
def counting_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOpa]:
    opa = _serve(tmp_path_factory, "counting", COUNTING_POLICY)
    yield opa
    opa.stop()


@pytest.fixture(scope="session")
def stopped_opa_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of an OPA that answered and was then stopped (connection refused): an outage."""
    opa = _serve(tmp_path_factory, "stopped", decision_policy("decision := {}"))
    url = opa.url
    opa.stop()
    return url


@pytest.fixture
def process_hook() -> Iterator[Callable[..., MutationHook]]:
    """Point the process-wide hook (the one Airflow calls) at an OPA; reset to unconfigured afterwards."""
    import airflow_opa_mutation as aom
    from airflow_opa_mutation import hook as hook_module

    def configure(url: str, **settings: Any) -> MutationHook:
        return aom.configure(Settings(url=url, **settings))

    yield configure
    with hook_module._default_lock:
        current, hook_module._default = hook_module._default, None
    if current is not None:
        current.close()


def assert_hardened_by_the_library(pod: Any) -> None:
    """The shipped library's default mutations reached the pod, as kubernetes models."""
    base = pod.spec.containers[0]
    assert base.name == "base"
    assert isinstance(base.security_context, k8s.V1SecurityContext)
    assert base.security_context.run_as_non_root is True
    assert base.security_context.allow_privilege_escalation is False
    assert base.security_context.capabilities.drop == ["ALL"]
    assert base.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.spec.automount_service_account_token is False


def echoed(pod: Any) -> dict[str, Any]:
    """The ``input.airflow`` the echo policy saw for ``pod``."""
    return json.loads(pod.metadata.annotations[ECHO_ANNOTATION])


# -- Airflow objects ------------------------------------------------------------------------------------


def task_context(task: Any, *, run_id: str, try_number: int = 1, map_index: int = -1) -> dict[str, Any]:
    """The template context Airflow's task runner builds for ``task`` (a real ``RuntimeTaskInstance``)."""
    from airflow.dag_processing.bundles.local import LocalDagBundle
    from airflow.sdk.api.datamodels._generated import DagRun, TIRunContext
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    now = datetime.now(UTC)
    dag_id = task.dag_id
    ti = RuntimeTaskInstance.model_construct(
        id=uuid4(),
        task_id=task.task_id,
        dag_id=dag_id,
        run_id=run_id,
        try_number=try_number,
        map_index=map_index,
        dag_version_id=uuid4(),
        task=task,
        bundle_instance=LocalDagBundle(name="tests", path=str(REPO)),
        start_date=now,
        _ti_context_from_server=TIRunContext(
            max_tries=3,
            dag_run=DagRun(
                dag_id=dag_id, run_id=run_id, logical_date=now, data_interval_start=now, data_interval_end=now,
                run_after=now, start_date=now, end_date=None, run_type="manual", state="running",
                consumed_asset_events=[], partition_key=None,
            ),
        ),
    )
    return dict(ti.get_template_context())


# -- KubernetesExecutor ---------------------------------------------------------------------------------

TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: placeholder-name
  labels:
    team: data-platform
  annotations:
    cluster-autoscaler.kubernetes.io/safe-to-evict: "false"
spec:
  serviceAccountName: airflow-worker
  restartPolicy: Never
  containers:
    - name: base
      image: apache/airflow:3.3.2
      imagePullPolicy: IfNotPresent
      env:
        - name: AIRFLOW__CORE__EXECUTOR
          value: LocalExecutor
      volumeMounts:
        - name: logs
          mountPath: /opt/airflow/logs
  volumes:
    - name: logs
      emptyDir: {}
"""

EXECUTOR_RUN_ID = "scheduled__2026-11-25T00:00:00+00:00"


@pytest.fixture(scope="session")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pod template file (the executor's ``pod_template_file``)."""
    path = tmp_path_factory.mktemp("template") / "pod_template.yaml"
    path.write_text(TEMPLATE)
    return path


def construct(template_file: Path, executor_config: dict[str, Any] | None = None, *, mutate: bool = True,
              **ids: Any) -> Any:
    """A worker pod built the way the executor's ``AirflowKubernetesScheduler.run_next`` builds it: the pod
    template file, then the executor's own pod, then the executor_config ``pod_override``, then the hook."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    ids = {"dag_id": "etl", "task_id": "load", "try_number": 1, "map_index": -1, "run_id": EXECUTOR_RUN_ID} | ids
    return PodGenerator.construct_pod(
        dag_id=ids["dag_id"],
        task_id=ids["task_id"],
        pod_id="etl-load-0a1b2c3d",
        try_number=ids["try_number"],
        kube_image="apache/airflow:3.3.2",
        date=None,
        args=["airflow", "tasks", "run", ids["dag_id"], ids["task_id"], ids["run_id"]],
        pod_override_object=PodGenerator.from_obj(executor_config),
        base_worker_pod=PodGenerator.deserialize_model_file(str(template_file)),
        namespace="airflow",
        scheduler_job_id="42",
        run_id=ids["run_id"],
        map_index=ids["map_index"],
        with_mutation_hook=mutate,
    )


def override(**container: Any) -> dict[str, Any]:
    """An executor_config whose ``pod_override`` sets these fields on the ``base`` container."""
    return {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", **container)]))}


# -- KubernetesPodOperator ------------------------------------------------------------------------------

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: nowhere
    cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
  - name: nobody
    user: {token: not-a-real-token}
contexts:
  - name: nowhere
    context: {cluster: nowhere, user: nobody, namespace: data}
current-context: nowhere
"""


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kubeconfig naming an API server that is never contacted."""
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(KUBECONFIG)
    return str(path)


def make_kpo(kubeconfig: str, task_id: str = "transform", dag_id: str = "warehouse", **kwargs: Any) -> Any:
    """A KubernetesPodOperator in a real DAG; ``kwargs`` override its (realistic) arguments."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None):
        kwargs = {
            "image": "ghcr.io/example/dbt:1.8.2",
            "namespace": "data",
            "name": "dbt-run",
            "labels": {"team": "analytics"},
            "env_vars": {"TARGET": "prod"},
            "container_resources": k8s.V1ResourceRequirements(limits={"memory": "512Mi"}),
            "cmds": ["dbt"],
            "arguments": ["run"],
            "kubernetes_conn_id": None,
            "config_file": kubeconfig,
        } | kwargs
        return KubernetesPodOperator(task_id=task_id, **kwargs)


# -- Airflow in a subprocess with its own AIRFLOW_HOME ------------------------------------------------------


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for an Airflow subprocess: none of this process's AIRFLOW* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW_CONFIG=str(home / "airflow.cfg"), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "hook"), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


#: Prepended to every subprocess script: records what the hook logs, as (level, message) pairs.
_PRELUDE = """
import json, logging, sys
RECORDS = []

class _Recorder(logging.Handler):
    def emit(self, record):
        RECORDS.append([record.levelname, record.getMessage()])

import airflow  # settings.initialize(): config, entry-point policy plugins, then airflow_local_settings.py

_logger = logging.getLogger("airflow_opa_mutation")
_logger.addHandler(_Recorder())
_logger.setLevel(logging.INFO)


def report(result):
    print("AOM-RESULT " + json.dumps(result, default=str), flush=True)
"""


def run_airflow(code: str, env: dict[str, str], *, timeout: float = 120) -> dict[str, Any]:
    """Run ``code`` under ``import airflow`` in a fresh interpreter; it hands back a result with ``report(obj)``."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        env=env, cwd=env["AIRFLOW_HOME"], capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    reports = [line.removeprefix("AOM-RESULT ") for line in done.stdout.splitlines() if line.startswith("AOM-RESULT ")]
    assert len(reports) == 1, f"expected one report\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    result: dict[str, Any] = json.loads(reports[0])
    result["_seconds"] = time.monotonic() - started
    result["_output"] = done.stdout + done.stderr  # Airflow's own logs (task logs under dag.test())
    return result
