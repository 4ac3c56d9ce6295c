"""Configuration through Airflow's own ``conf``: a real airflow.cfg ``[opa_mutation]`` section and
``AIRFLOW__OPA_MUTATION__*`` variables, precedence env > airflow.cfg > default. Airflow reads
AIRFLOW_HOME/AIRFLOW_CONFIG at import, so each case is a fresh interpreter with its own environment."""

from __future__ import annotations

import textwrap

import pytest
from kubernetes import client as k8s

from .conftest import airflow_env, run_airflow

pytestmark = pytest.mark.airflow

#: Prints where every key came from, the Settings the process-wide hook was built with, and what that
#: hook did to a pod handed to ``airflow.settings.pod_mutation_hook``.
PROBE = """
from airflow import settings
from kubernetes import client as k8s
import airflow_opa_mutation as aom
from airflow_opa_mutation.config import read_raw

sources = read_raw()
pod = k8s.V1Pod(
    metadata=k8s.V1ObjectMeta(name="probe", namespace="airflow",
                              labels={"dag_id": "d", "task_id": "t", "kubernetes_executor": "True"}),
    spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="busybox:1.36")]),
)
error = None
try:
    settings.pod_mutation_hook(pod)
except aom.OpaMutationError as exc:
    error = f"{type(exc).__name__}: {exc}"
try:
    hook = aom.hook.default_hook()
except aom.ConfigError:
    hook = None  # the process-wide hook could not be built from this configuration
report({
    "origins": {key: [source.origin, source.raw] for key, source in sources.items()},
    "settings": None if hook is None else {k: getattr(hook.settings, k) for k in
                                           ("url", "timeout", "fail_mode", "mode", "decision_path", "protected_labels")},
    "automount": pod.spec.automount_service_account_token,
    "error": error,
    "records": RECORDS,
})
"""


def _write_cfg(home, body):
    (home / "airflow.cfg").write_text(textwrap.dedent(body))


def test_env_over_airflow_cfg_over_default(tmp_path, library_opa, stopped_opa_url):
    _write_cfg(tmp_path, f"""
        [core]
        load_examples = False

        [opa_mutation]
        url = {stopped_opa_url}
        timeout = 7
        fail_mode = open
        mode = dry-run
        protected_labels = team, cost-center
    """)
    result = run_airflow(PROBE, airflow_env(
        tmp_path,
        AIRFLOW__OPA_MUTATION__URL=library_opa.url,  # env beats airflow.cfg's (dead) OPA
        AIRFLOW__OPA_MUTATION__MODE="enforce",  # and its dry-run
    ))
    origins = result["origins"]
    assert origins["url"] == ["env", library_opa.url]
    assert origins["mode"] == ["env", "enforce"]
    assert origins["timeout"] == ["airflow.cfg", "7"]
    assert origins["fail_mode"] == ["airflow.cfg", "open"]
    assert origins["protected_labels"] == ["airflow.cfg", "team, cost-center"]
    assert origins["decision_path"] == ["default", None]
    assert origins["token"] == ["default", None]
    assert result["settings"] == {"url": library_opa.url, "timeout": 7.0, "fail_mode": "open", "mode": "enforce",
                                  "decision_path": "airflow/pod/decision", "protected_labels": ["team", "cost-center"]}
    assert result["error"] is None
    assert result["automount"] is False  # enforced by the library OPA the environment pointed at


def test_airflow_cfg_alone_configures_the_hook(tmp_path, library_opa):
    _write_cfg(tmp_path, f"""
        [opa_mutation]
        url = {library_opa.url}/
        mode = dry-run
    """)
    result = run_airflow(PROBE, airflow_env(tmp_path))
    assert result["origins"]["url"] == ["airflow.cfg", f"{library_opa.url}/"]
    assert result["origins"]["mode"] == ["airflow.cfg", "dry-run"]
    assert result["origins"]["fail_mode"] == ["default", None]
    assert result["settings"]["url"] == library_opa.url
    assert result["settings"]["mode"] == "dry-run"
    assert result["settings"]["fail_mode"] == "closed" and result["settings"]["timeout"] == 2.0
    assert result["automount"] is None  # dry-run: evaluated and logged, not applied
    assert any(msg.startswith("dry-run: would change pod airflow/probe") for _, msg in result["records"])


def test_bad_value_in_airflow_cfg_is_a_config_error_naming_the_key(tmp_path, library_opa):
    _write_cfg(tmp_path, """
        [opa_mutation]
        timeout = soon
        fail_mode = open
    """)
    result = run_airflow(PROBE, airflow_env(tmp_path, AIRFLOW__OPA_MUTATION__URL=library_opa.url))
    assert result["origins"]["timeout"] == ["airflow.cfg", "soon"]
    assert result["settings"] is None  # the hook was never built
    assert result["error"].startswith("ConfigError: ")
    assert "[opa_mutation] timeout = 'soon'" in result["error"]  # raised even with fail_mode = open


@pytest.mark.parametrize("where", ["airflow.cfg", "env"])
def test_kill_switch_mode_off_from_the_operator_s_configuration(tmp_path, stopped_opa_url, where):
    """``mode = off`` (issue 25, item 13) in airflow.cfg or the process environment: the pod Airflow hands
    the hook goes through untouched although OPA is down and fail_mode is closed, and the hook says once
    that it is off."""
    cfg_mode = "off" if where == "airflow.cfg" else "enforce"
    _write_cfg(tmp_path, f"""
        [opa_mutation]
        url = {stopped_opa_url}
        fail_mode = closed
        mode = {cfg_mode}
    """)
    env = airflow_env(tmp_path, **({"AIRFLOW__OPA_MUTATION__MODE": "off"} if where == "env" else {}))
    result = run_airflow(PROBE, env)
    assert result["origins"]["mode"] == [where, "off"]
    assert result["settings"]["mode"] == "off"
    assert result["error"] is None
    assert result["automount"] is None  # nothing applied
    assert [level for level, msg in result["records"] if "mode=off" in msg] == ["WARNING"]


def test_dag_authors_cannot_turn_the_hook_off(template_file, library_opa, process_hook):
    """What a DAG author controls of the pod (its labels, annotations, the base container's environment
    through ``executor_config``'s ``pod_override``) never sets the mode: the scheduler's hook still
    enforces, and the environment variable itself is denied by ``protect_enforcement``."""
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    from airflow_opa_mutation import PodDenied

    from .conftest import construct

    process_hook(library_opa.url)
    off = {"mode": "off", "opa_mutation/mode": "off", "airflow-opa-mutation/mode": "off"}
    metadata = k8s.V1ObjectMeta(labels={"mode": "off"}, annotations=off)
    privileged = k8s.V1Container(name="base", security_context=k8s.V1SecurityContext(privileged=True))
    with pytest.raises(PodMutationHookException) as raised:
        construct(template_file, {"pod_override": k8s.V1Pod(metadata=metadata, spec=k8s.V1PodSpec(containers=[privileged]))})
    assert isinstance(raised.value.__cause__, PodDenied) and "[deny_privileged]" in str(raised.value.__cause__)
    in_env = k8s.V1Container(name="base", env=[k8s.V1EnvVar(name="AIRFLOW__OPA_MUTATION__MODE", value="off")])
    with pytest.raises(PodMutationHookException) as raised:
        construct(template_file, {"pod_override": k8s.V1Pod(metadata=metadata, spec=k8s.V1PodSpec(containers=[in_env]))})
    assert isinstance(raised.value.__cause__, PodDenied)
    assert "[protect_enforcement]" in str(raised.value.__cause__) and "AIRFLOW__OPA_MUTATION__MODE" in str(raised.value.__cause__)
