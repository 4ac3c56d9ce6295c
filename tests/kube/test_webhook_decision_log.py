"""The admission OPA's decision log, masked by deploy/opa/mask.rego as deploy/kubernetes/admission-opa.yaml
loads it: the AdmissionReview is the decision's input, so the pods and pod templates it carries (object and
oldObject) and the base64 patch of the answer are masked, and no secret a pod carries reaches the log.

A real kube-apiserver calls a real OPA (policies/ and the mask, TLS, console decision logs) through the
command's webhook configurations.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES, REPO
from ..reliability.certs import TestCA
from .cluster import ControlPlane
from .test_webhook_timeout import namespace, register, unregister, wait_until_judged

MASK = REPO / "deploy" / "opa" / "mask.rego"
NAME = "aom-decision-log"
SECRETS = ("env-s3cret-value-1", "flag-s3cret-value-2", "Bearer annotation-s3cret-3", "template-s3cret-value-4")


def container(secret: str) -> dict[str, Any]:
    return {"name": "c", "image": "busybox:1", "args": ["run", "--password", SECRETS[1]],
            "env": [{"name": "DB_URL", "value": secret}]}


@pytest.fixture(scope="module")
def logged(kube_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalOpa, str]]:
    folder = tmp_path_factory.mktemp("decision-log")
    ca = TestCA(folder)
    served = ca.issue("opa", ips=("127.0.0.1",))
    opa = LocalOpa([POLICIES, MASK], scheme="https", args=[
        "--tls-cert-file", str(served.cert), "--tls-private-key-file", str(served.key),
        "--set", "decision_logs.console=true",
    ]).start()
    register(kube_cluster, opa.url, ca.cert_path, NAME, "Fail", timeout=10)
    try:
        selected = namespace(kube_cluster, NAME, NAME)
        wait_until_judged(kube_cluster, selected)
        yield opa, selected
    finally:
        unregister(kube_cluster, NAME)
        opa.stop()


def events(opa: LocalOpa, path: str) -> list[dict[str, Any]]:
    found = []
    for line in opa.logs().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("msg") == "Decision Log" and event.get("path") == path:
            found.append(event)
    return found


def logged_event(opa: LocalOpa, kind: str) -> dict[str, Any]:
    """The latest mutate decision on a ``kind`` named "secrets" (a readiness wait for the console log)."""
    for _ in range(100):
        matching = [e for e in events(opa, "airflow/pod/admission/mutate")
                    if (e["input"]["request"]["kind"]["kind"], e["input"]["request"]["name"]) == (kind, "secrets")]
        if matching:
            return matching[-1]
        threading.Event().wait(0.1)
    raise AssertionError(f"no decision-log event for {kind}:\n{opa.logs()[-2000:]}")


def test_a_pods_secrets_never_reach_the_admission_decision_log(logged, kube_cluster):
    opa, selected = logged
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "secrets", "annotations": {"example.com/credentials": SECRETS[2]}},
           "spec": {"containers": [container(SECRETS[0])]}}
    created = kube_cluster.create_pod(selected, pod)
    assert created.status == 201, created
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "secrets"}, "spec": {
        "selector": {"matchLabels": {"app": "s"}},
        "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [container(SECRETS[3])]}},
    }}
    stored = kube_cluster.request("POST", f"/apis/apps/v1/namespaces/{selected}/deployments", deployment)
    assert stored.status == 201, stored

    pod_event = logged_event(opa, "Pod")
    assert "/input/request/object/spec/containers/0/env/0/value" in pod_event.get("erased", [])
    workload_event = logged_event(opa, "Deployment")
    assert "/input/request/object/spec/template/spec/containers/0/env/0/value" in workload_event.get("erased", [])
    logs = opa.logs()
    assert not [secret for secret in SECRETS if secret in logs]
