"""Discovery: Airflow's own plugin manager finds the hook through the ``airflow.policy`` entry point, and a
second registration through a real ``airflow_local_settings.py`` does not apply a decision twice."""

from __future__ import annotations

import json
import textwrap

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import AUDIT_ANNOTATION, PodDenied, plugin

from ..conftest import worker_pod
from .conftest import airflow_env, assert_hardened_by_the_library, run_airflow

pytestmark = pytest.mark.airflow


def _our_impls(pm):
    return [impl for impl in pm.hook.pod_mutation_hook.get_hookimpls() if impl.plugin is plugin]


def test_import_airflow_registers_the_entry_point_with_its_policy_plugin_manager():
    from airflow import settings

    pm = settings.get_policy_plugin_manager()  # the manager `import airflow` (settings.initialize) loaded
    assert pm.get_plugin("airflow_opa_mutation") is plugin
    impls = _our_impls(pm)
    assert [impl.function for impl in impls] == [plugin.pod_mutation_hook]
    assert [impl.plugin_name for impl in pm.hook.pod_mutation_hook.get_hookimpls()] == ["airflow_opa_mutation"]

    settings.load_policy_plugins(pm)  # loading again (another initialise) does not register it twice
    assert len(_our_impls(pm)) == 1


def test_a_fresh_plugin_manager_loads_it_through_airflows_loader():
    from airflow import settings

    fresh = settings.get_policy_plugin_manager.__wrapped__()  # built exactly as Airflow builds its own
    assert fresh is not settings.get_policy_plugin_manager()
    assert fresh.get_plugin("airflow_opa_mutation") is None
    settings.load_policy_plugins(fresh)  # pm.load_setuptools_entrypoints("airflow.policy")
    assert fresh.get_plugin("airflow_opa_mutation") is plugin
    assert len(_our_impls(fresh)) == 1


def test_airflow_settings_pod_mutation_hook_applies_the_library_decision(library_opa, process_hook):
    from airflow import settings

    process_hook(library_opa.url)
    pod = worker_pod()
    original = pod
    settings.pod_mutation_hook(pod)  # what PodGenerator and the KubernetesPodOperator call
    assert pod is original
    assert_hardened_by_the_library(pod)
    audit = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert {"security_context", "service_account_token"} <= set(audit["policies"])

    privileged = worker_pod("privileged")
    privileged.spec.containers[0].security_context = k8s.V1SecurityContext(privileged=True)
    with pytest.raises(PodDenied, match="deny_privileged"):
        settings.pod_mutation_hook(privileged)  # airflow.settings passes our exception through


def test_second_registration_in_airflow_local_settings_does_not_apply_twice(tmp_path, counting_opa):
    """The entry point plus ``airflow_local_settings.py`` in $AIRFLOW_HOME/config: Airflow calls both."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "airflow_local_settings.py").write_text(
        "from airflow_opa_mutation import pod_mutation_hook  # noqa: F401\n"
    )
    result = run_airflow(
        """
        from airflow import settings
        from kubernetes import client as k8s

        pm = settings.get_policy_plugin_manager()
        impls = [impl.plugin_name for impl in pm.hook.pod_mutation_hook.get_hookimpls()]

        def pod(name):
            return k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(name=name, namespace="airflow",
                                          labels={"dag_id": "d", "task_id": "t", "kubernetes_executor": "True"}),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="busybox:1.36")]),
            )

        first, second = pod("first"), pod("second")
        settings.pod_mutation_hook(first)
        settings.pod_mutation_hook(second)
        import airflow_local_settings
        report({
            "impls": impls,
            "local_settings": airflow_local_settings.__file__,
            "labels": [first.metadata.labels, second.metadata.labels],
            "audits": [p.metadata.annotations.get("airflow-opa-mutation/decision") for p in (first, second)],
            "records": RECORDS,
        })
        """,
        airflow_env(tmp_path, AIRFLOW__OPA_MUTATION__URL=counting_opa.url),
    )
    assert result["local_settings"] == str(tmp_path / "config" / "airflow_local_settings.py")
    # Two implementations: ours (the entry point) and airflow_local_settings.py's, registered after it so
    # that pluggy calls it first (get_hookimpls lists them in registration order).
    assert result["impls"] == ["airflow_opa_mutation", "AirflowLocalSettingsPolicy"]
    # Each pod got the counting decision exactly once, though both implementations ran on it.
    assert [labels["applied"] for labels in result["labels"]] == ["1", "1"]
    assert all(json.loads(audit)["request_uid"] for audit in result["audits"])
    warnings = [msg for level, msg in result["records"] if level == "WARNING"]
    assert len(warnings) == 2, result["records"]
    assert all("registered more than once" in msg for msg in warnings)
    summaries = [msg for level, msg in result["records"] if level == "INFO" and msg.startswith("opa_mutation ")]
    assert len(summaries) == 2, textwrap.indent("\n".join(summaries), "  ")  # one evaluation per pod
    assert all(s.startswith("opa_mutation mutated ") and " ops=1 " in s for s in summaries)
