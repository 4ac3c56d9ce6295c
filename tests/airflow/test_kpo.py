"""The KubernetesPodOperator's path: ``build_pod_request_obj(context)`` in a real DAG with a real task
instance context, ``dry_run()``, and a denied pod, against the shipped policy library in a real OPA.

``build_pod_request_obj`` with ``dry_run=False`` (what ``execute()`` does) asks the operator's
KubernetesHook whether it runs in the cluster. These tests give the operator ``config_file=`` a kubeconfig
naming an API server that is never contacted and ``kubernetes_conn_id=None`` (no Airflow connection to
look up), so the production path runs in full, ``airflow_kpo_in_cluster`` label included, with no cluster.
"""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client as k8s

from airflow_opa_mutation import AUDIT_ANNOTATION, PodDenied

from .conftest import assert_hardened_by_the_library, make_kpo, task_context

pytestmark = pytest.mark.airflow

RUN_ID = "manual__2026-11-25T12:00:00.123456+00:00"


def test_build_pod_request_obj_returns_the_mutated_pod(kubeconfig, library_opa, process_hook):
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    process_hook(library_opa.url)
    kpo = make_kpo(kubeconfig)
    pod = kpo.build_pod_request_obj(task_context(kpo, run_id=RUN_ID, try_number=2))

    assert_hardened_by_the_library(pod)
    base = pod.spec.containers[0]
    audit = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert {"security_context", "service_account_token"} <= set(audit["policies"])
    # the operator's own settings and labels survive
    assert base.image == "ghcr.io/example/dbt:1.8.2"
    assert base.command == ["dbt"] and base.args == ["run"]
    assert [(e.name, e.value) for e in base.env] == [("TARGET", "prod")]
    assert isinstance(base.resources, k8s.V1ResourceRequirements) and base.resources.limits == {"memory": "512Mi"}
    assert pod.metadata.namespace == "data" and pod.metadata.name.startswith("dbt-run-")
    labels = pod.metadata.labels
    assert labels["team"] == "analytics"
    assert labels["kubernetes_pod_operator"] == "True"
    assert labels["airflow_kpo_in_cluster"] == "False"  # dry_run=False: the hook was asked, from the kubeconfig
    assert (labels["dag_id"], labels["task_id"], labels["try_number"]) == ("warehouse", "transform", "2")
    assert labels["run_id"] == make_safe_label_value(RUN_ID) != RUN_ID


def test_dry_run_prints_the_mutated_pod(kubeconfig, library_opa, process_hook, capsys):
    process_hook(library_opa.url)
    kpo = make_kpo(kubeconfig)
    capsys.readouterr()
    kpo.dry_run()
    printed = capsys.readouterr().out
    document = printed[printed.index("api_version: v1"):]  # after any log lines Airflow wrote to stdout
    pod = yaml.safe_load(document)
    container = pod["spec"]["containers"][0]
    assert container["security_context"]["run_as_non_root"] is True
    assert container["security_context"]["allow_privilege_escalation"] is False
    assert container["security_context"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automount_service_account_token"] is False
    assert AUDIT_ANNOTATION in pod["metadata"]["annotations"]
    assert pod["metadata"]["labels"]["team"] == "analytics"


@pytest.mark.parametrize(
    ("kwargs", "policy", "needle"),
    [
        ({"container_security_context": {"privileged": True}}, "deny_privileged", "privileged"),
        ({"hostnetwork": True}, "deny_host_namespaces", "hostNetwork"),
    ],
    ids=["privileged", "host_network"],
)
def test_denied_kpo_pod_raises_pod_denied_naming_the_policy(kubeconfig, library_opa, process_hook, kwargs, policy,
                                                              needle):
    process_hook(library_opa.url)
    kpo = make_kpo(kubeconfig, **kwargs)
    with pytest.raises(PodDenied) as raised:  # the operator lets the hook's exception through unchanged
        kpo.build_pod_request_obj(task_context(kpo, run_id=RUN_ID))
    message = str(raised.value)
    assert f"[{policy}]" in message and needle in message
    assert "data/dbt-run-" in message and "dag_id=warehouse" in message and "task_id=transform" in message
