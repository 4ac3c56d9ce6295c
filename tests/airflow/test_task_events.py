"""Issue 26 item 1 at unit level: on the KubernetesExecutor path the hook writes a denial (and, in dry-run, a
"would deny") into the event log of the task try, Airflow's ``log`` table (tests/airflow/test_kube_e2e.py reads
it back through the real API server from the real scheduler's DB). A real KubernetesExecutor object, real
``PodGenerator.construct_pod``, Airflow's own ``Log`` model and sessions on a sqlite DB, real OPA."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import PodDenied

from ..conftest import decision_policy
from .conftest import EXECUTOR_RUN_ID, _serve, construct, override

pytestmark = pytest.mark.airflow

#: A worker's Execution API token, as a JWT (what the pod's ``--json-string`` workload carries).
TOKEN = "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ0YXNrIn0.c2lnbmF0dXJlLW5vdC1yZWFs"

#: Denies every pod, quoting the base container's arguments (as a careless policy might), plus a second
#: policy's message: the event lists both.
QUOTING_POLICY = decision_policy("""
    decision := {"deny": [
        {"policy": "no_debug_flags", "msg": sprintf("container base runs %s", [concat(" ", input.pod.spec.containers[0].args)])},
        {"policy": "second", "msg": "and another reason"},
    ]}
""")


@pytest.fixture(scope="module")
def quoting_opa(tmp_path_factory: pytest.TempPathFactory) -> Any:
    opa = _serve(tmp_path_factory, "quoting", QUOTING_POLICY)
    yield opa
    opa.stop()


@pytest.fixture
def executor() -> Any:
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor

    return KubernetesExecutor()


def build_as(executor: Any, template_file: Path, executor_config: dict[str, Any] | None = None, **ids: Any) -> Any:
    """Build the worker pod the way the executor's ``_create_pods_*`` methods do: from a method of the
    executor (``self``), through ``PodGenerator.construct_pod`` with the hook."""
    self = executor  # noqa: F841 - the frame the hook finds the executor in, as in the provider's methods
    return construct(template_file, executor_config, **ids)


@pytest.fixture
def event_log() -> Any:
    """The session AIRFLOW_HOME's metadata DB with an empty ``log`` table (only that table: no migration)."""
    from airflow import settings
    from airflow.models.log import Log

    Log.__table__.create(settings.engine, checkfirst=True)
    with settings.engine.begin() as connection:
        connection.execute(Log.__table__.delete())
    yield Log.__table__
    Log.__table__.drop(settings.engine, checkfirst=True)


def events(_: Any = None) -> list[Any]:
    """The event log's rows (named tuples: event, dag_id, task_id, run_id, try_number, map_index, extra)."""
    from airflow import settings
    from airflow.models.log import Log

    with settings.engine.connect() as connection:
        return list(connection.execute(Log.__table__.select().order_by(Log.__table__.c.id)))


def test_a_denial_is_an_event_of_the_denied_try_with_every_reason(template_file, library_opa, process_hook,
                                                                 executor, event_log):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(library_opa.url)
    with pytest.raises(PodMutationHookException) as raised:
        build_as(executor, template_file, override(security_context=k8s.V1SecurityContext(privileged=True)),
                 try_number=3, map_index=2)
    denied = raised.value.__cause__
    assert isinstance(denied, PodDenied)
    [event] = events(executor)
    assert event.event == "opa_mutation.denied"
    assert (event.dag_id, event.task_id, event.run_id, event.try_number, event.map_index) == (
        "etl", "load", EXECUTOR_RUN_ID, 3, 2)
    head, *reasons, where = event.extra.splitlines()
    assert head == "denied by policy:"
    # every reason, one per line, ";" between them: read as one paragraph it is PodDenied's own list
    assert reasons == [f"[{m.policy}] {m.msg};" for m in denied.messages[:-1]] + [
        f"[{denied.messages[-1].policy}] {denied.messages[-1].msg}"]
    assert {m.policy for m in denied.messages} == {"deny_privileged", "pod_security"}
    assert where.startswith(f"(pod airflow/etl-load-0a1b2c3d, decision {denied.decision_path}, request_uid ")
    assert where.endswith(")")


def test_dry_run_records_would_deny_and_lets_the_pod_through(template_file, library_opa, process_hook, executor,
                                                             event_log):
    process_hook(library_opa.url, mode="dry-run")
    pod = build_as(executor, template_file, override(security_context=k8s.V1SecurityContext(privileged=True)))
    assert pod.spec.containers[0].security_context.privileged is True  # dry-run: unchanged, not refused
    [event] = events(executor)
    assert event.event == "opa_mutation.would_deny" and event.try_number == 1 and event.map_index == -1
    head, *reasons, _ = event.extra.splitlines()
    assert head == "would be denied by policy (dry-run: the pod went on):"
    assert '[deny_privileged] container "base" is privileged;' in reasons


def test_pods_let_through_and_pods_built_outside_an_executor_record_nothing(template_file, library_opa,
                                                                           process_hook, executor, caplog, event_log):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(library_opa.url)
    build_as(executor, template_file)  # mutated, not denied
    assert events(executor) == []
    with caplog.at_level(logging.WARNING, logger="airflow_opa_mutation"), pytest.raises(PodMutationHookException):
        construct(template_file, override(security_context=k8s.V1SecurityContext(privileged=True)))
    assert not [r for r in caplog.records if "event log" in r.getMessage()]
    assert events(executor) == []


def test_quoted_credentials_are_redacted_and_a_failure_to_record_changes_nothing(
        template_file, quoting_opa, process_hook, executor, caplog, event_log):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(quoting_opa.url)
    args = ["run", "--json-string", json.dumps({"token": TOKEN}, separators=(",", ":")), "--password=hunter2",
            f"Authorization: Bearer {TOKEN}"]
    with pytest.raises(PodMutationHookException) as raised:
        build_as(executor, template_file, override(args=args))
    [event] = events(executor)
    assert TOKEN not in event.extra and "hunter2" not in event.extra
    _, first, second, _ = event.extra.splitlines()
    assert first.startswith("[no_debug_flags] container base runs run --json-string <redacted> --password=<redacted>")
    assert first.endswith(";")
    assert second == "[second] and another reason"
    # the exception (a KubernetesPodOperator task's log shows it) says every reason, redacted the same way
    reason = str(raised.value.__cause__)
    assert "[no_debug_flags] container base runs run --json-string <redacted> --password=<redacted>" in reason
    assert "; [second] and another reason" in reason
    assert TOKEN not in reason and "hunter2" not in reason

    from airflow import settings

    event_log.drop(settings.engine)  # the DB cannot take the entry: the pod is denied all the same
    with caplog.at_level(logging.WARNING, logger="airflow_opa_mutation"), pytest.raises(PodMutationHookException):
        build_as(executor, template_file, override(args=args))
    assert any("could not record the denial in the task's event log: OperationalError" in r.getMessage()
               and "no such table: log" in r.getMessage() for r in caplog.records)


def test_a_pod_over_the_hooks_limits_is_recorded_too(template_file, library_opa, process_hook, executor, event_log):
    """Every ``PodDenied`` reaches the event log, the hook's own limits (policy ``airflow-opa-mutation/limits``)
    included; OPA is not even asked."""
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(library_opa.url, max_containers=1)
    sidecar = {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[
        k8s.V1Container(name="base"), k8s.V1Container(name="sidecar", image="busybox")]))}
    with pytest.raises(PodMutationHookException):
        build_as(executor, template_file, sidecar)
    [event] = events(executor)
    _, denial, _ = event.extra.splitlines()
    assert event.event == "opa_mutation.denied" and denial.startswith("[airflow-opa-mutation/limits] ")
    assert "max_containers" in denial
