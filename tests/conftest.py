"""Fixtures: real OPA servers on loopback (never a mock), hooks pointed at them, realistic Airflow pods."""

from __future__ import annotations

import json
import logging
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

import airflow_opa_mutation as aom
from airflow_opa_mutation import MutationHook, Settings
from airflow_opa_mutation.cli._local_opa import LocalOpa

REPO = Path(__file__).resolve().parents[1]
#: Schemas and CRDs from published packages (scripts/install-schemas), never copied into the repository.
_SCHEMAS = Path(os.environ.get("AOM_SCHEMAS_DIR") or REPO / ".tools" / "schemas")


def schema(name: str) -> Path:
    """A file fetched by scripts/install-schemas (junit-10.xsd, sarif-schema-2.1.0.json, crds/...); never
    skipped: the test fails, naming the command."""
    path = _SCHEMAS / name
    assert path.is_file(), f"no {name} in {_SCHEMAS}: run scripts/install-schemas"
    return path
POLICIES = REPO / "policies"

# The real control plane's fixtures (``kube_cluster``, ``kube_namespace``): one per session, for tests/kube
# and tests/airflow alike; the admission webhooks registered in it (``webhook``, one per module using it).
pytest_plugins = ["tests.kube.fixtures", "tests.kube.webhook"]


def pytest_report_header(config: pytest.Config) -> str:
    """How the property tests draw their examples, and how to replay a run (tests/replay.py)."""
    from .replay import describe

    return describe()

# The venvs live in a per-user cache shared by every clone; the project's scripts put this clone's hook/
# first on PYTHONPATH (subprocesses and Airflow's entry point loading inherit it). Refuse to test another
# clone's package by accident.
_PACKAGE = Path(aom.__file__).resolve().parent
if _PACKAGE != REPO / "hook" / "airflow_opa_mutation":
    raise pytest.UsageError(
        f"airflow_opa_mutation is imported from {_PACKAGE}, not from this clone ({REPO}); "
        f"run the tests through scripts/test, or put {REPO / 'hook'} first on PYTHONPATH"
    )


@pytest.fixture
def start_opa(tmp_path: Path) -> Iterator[Callable[..., LocalOpa]]:
    """Start a real OPA serving the given Rego sources (name -> text) and/or paths."""
    servers: list[LocalOpa] = []

    def start(
        rego: dict[str, str] | None = None,
        *,
        paths: list[Path] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
    ) -> LocalOpa:
        folder = tmp_path / f"opa-{len(servers)}"
        folder.mkdir()
        for name, text in (rego or {}).items():
            (folder / name).write_text(textwrap.dedent(text))
        server_paths = ([folder] if rego else []) + list(paths or [])
        server = LocalOpa(server_paths, args=args or [], port=port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def library_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[dict[str, Any]], LocalOpa]]:
    """A real OPA serving the shipped library (policies/) with a configuration delta merged over
    data.airflow.pod.config; one server per distinct delta, shared by the module's tests."""
    started: dict[str, LocalOpa] = {}

    def get(config: dict[str, Any]) -> LocalOpa:
        key = json.dumps(config, sort_keys=True)
        if key not in started:
            paths = [POLICIES]
            if config:
                folder = tmp_path_factory.mktemp("config")
                (folder / "config.json").write_text(json.dumps({"airflow": {"pod": {"config": config}}}))
                paths.append(folder / "config.json")
            started[key] = LocalOpa(paths).start()
        return started[key]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture
def make_hook() -> Iterator[Callable[..., MutationHook]]:
    hooks: list[MutationHook] = []

    def make(opa: LocalOpa | str, **settings: Any) -> MutationHook:
        url = opa if isinstance(opa, str) else opa.url
        hook = MutationHook(Settings(url=url, **settings))
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


def decision_policy(body: str, package: str = "airflow.pod") -> dict[str, str]:
    """A one-file policy defining ``data.airflow.pod.decision`` (or another package) from ``body``."""
    return {"policy.rego": f"package {package}\n\n{textwrap.dedent(body)}\n"}


def worker_pod(
    name: str = "example-dag-task-1-abcdef",
    *,
    namespace: str = "airflow",
    containers: int = 1,
    launcher: str = "kubernetes_executor",
) -> k8s.V1Pod:
    """A pod shaped like the KubernetesExecutor's: Airflow's labels and annotations, container 'base'."""
    labels = {
        "dag_id": "example_dag",
        "task_id": "extract",
        "run_id": "manual__2026-11-25T120000-0000-5b0c4e1b2",
        "try_number": "1",
        "map_index": "-1",
        "airflow_version": "3.3.2",
        "airflow-worker": "1",
    }
    if launcher == "kubernetes_executor":
        labels["kubernetes_executor"] = "True"
    else:
        labels["kubernetes_pod_operator"] = "True"
    annotations = {
        "dag_id": "example_dag",
        "task_id": "extract",
        "run_id": "manual__2026-11-25T12:00:00+00:00",
        "try_number": "1",
    }
    extra = [
        k8s.V1Container(name=f"sidecar-{i}", image=f"busybox:1.{i}", args=["sleep", "infinity"])
        for i in range(1, containers)
    ]
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels, annotations=annotations),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            service_account_name="airflow-worker",
            containers=[
                k8s.V1Container(
                    name="base",
                    image="apache/airflow:3.3.2",
                    args=["airflow", "tasks", "run", "example_dag", "extract", "manual__2026-11-25"],
                    env=[k8s.V1EnvVar(name="AIRFLOW_IS_K8S_EXECUTOR_POD", value="True")],
                    resources=k8s.V1ResourceRequirements(requests={"cpu": "500m", "memory": "1Gi"}),
                    ports=[k8s.V1ContainerPort(container_port=8793, name="worker-logs")],
                    liveness_probe=k8s.V1Probe(
                        http_get=k8s.V1HTTPGetAction(path="/health", port="worker-logs")
                    ),
                ),
                *extra,
            ],
        ),
    )


@pytest.fixture
def pod() -> k8s.V1Pod:
    return worker_pod()


@pytest.fixture
def hook_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="airflow_opa_mutation")
    return caplog
