"""The admission webhooks of a real kube-apiserver (tests/kube/cluster.py), served by a real OPA over TLS
from policies/ itself and registered from ``airflow-opa-mutation admission manifests``' own output: the
``webhook`` fixture (a pytest plugin, ``pytest_plugins`` in tests/conftest.py) and its helpers, shared by
tests/kube/test_webhook.py and tests/airflow/test_kube_webhook_e2e.py (Airflow with the webhook on).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner

from airflow_opa_mutation import AUDIT_ANNOTATION
from airflow_opa_mutation.cli import cli
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES
from ..reliability.certs import TestCA
from .cluster import ControlPlane

LABEL = ("airflow-opa-mutation/admission", "enabled")
SCHEDULER = ("wh-scheduler", "airflow-scheduler")  # a trusted requester's namespace and service account
SCHEDULER_USER = f"system:serviceaccount:{SCHEDULER[0]}:{SCHEDULER[1]}"
TRUST = {"admission": {"trusted_requesters": [{"username": SCHEDULER_USER}]}}
WEBHOOKS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")


@dataclass
class Webhook:
    """The webhook's OPA (TLS, policies/) and the configuration it currently holds."""

    opa: LocalOpa
    ca_file: Path
    documents: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)

    def configure(self, config: dict[str, Any]) -> None:
        """Replace data.airflow.pod.config (the shipped empty delta, the trust, ``config``) at run time."""
        document = {"exempt": {}, "policies": {}, **TRUST, **config}
        if document == self.config:
            return
        response = requests.put(
            f"{self.opa.url}/v1/data/airflow/pod/config", json=document, verify=str(self.ca_file), timeout=30
        )
        assert response.status_code == 204, response.text
        self.config = document


def selected(kube: ControlPlane, name: str, *, labelled: bool = True) -> str:
    """Namespace ``name``, carrying the webhooks' label unless ``labelled`` is false, with its default
    ServiceAccount."""
    labels = dict([LABEL]) if labelled else {}
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    result = kube.request("POST", "/api/v1/namespaces", body)
    assert result.ok or result.status == 409, result
    kube.service_account(name, "default")
    return name


def wait_until_judged(kube: ControlPlane, namespace: str) -> None:
    """New webhook configurations take effect within about a second: wait until a privileged pod is
    refused by them (a readiness wait, not an assertion on time)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1", "securityContext": {"privileged": True}}]},
    }
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "denied by policy" in kube.create_pod(namespace, pod, dry_run=True).message:
            return
        time.sleep(0.2)
    raise AssertionError("the webhooks never judged a pod")


@pytest.fixture(scope="module")
def webhook(kube_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    folder = tmp_path_factory.mktemp("webhook")
    ca = TestCA(folder)
    served = ca.issue("opa", ips=("127.0.0.1",))
    config = folder / "config.json"
    config.write_text(json.dumps({"airflow": {"pod": {"config": TRUST}}}))
    # The README's command line: opa run --server --tls-cert-file ... --tls-private-key-file ... policies/ CONFIG
    opa = LocalOpa(
        [POLICIES, config],
        args=["--tls-cert-file", str(served.cert), "--tls-private-key-file", str(served.key)],
        scheme="https",
    ).start()
    output = CliRunner().invoke(
        cli, ["admission", "manifests", "--url", opa.url, "--ca-file", str(ca.cert_path)], catch_exceptions=False
    )
    assert output.exit_code == 0, output.stderr
    documents = list(yaml.safe_load_all(output.stdout))
    for document, plural in zip(documents, WEBHOOKS, strict=True):
        created = kube_cluster.request("POST", f"/apis/admissionregistration.k8s.io/v1/{plural}", document)
        assert created.status == 201, created
    hook = Webhook(opa, ca.cert_path, documents)
    hook.configure({})
    wait_until_judged(kube_cluster, selected(kube_cluster, "wh-probe"))
    yield hook
    for plural in WEBHOOKS:
        kube_cluster.request("DELETE", f"/apis/admissionregistration.k8s.io/v1/{plural}/airflow-opa-mutation")
    opa.stop()


def audit_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    raw = (pod["metadata"].get("annotations") or {}).get(AUDIT_ANNOTATION)
    return json.loads(raw) if raw else None


# What the API server itself stores that no layer decides on.
_SERVER_FIELDS = ("name", "uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def comparable(pod: dict[str, Any]) -> dict[str, Any]:
    """A stored pod without its identity, its audit record reduced to the policies, and the API server's
    token volume named without its random suffix."""
    pod = json.loads(re.sub(r'"kube-api-access-[a-z0-9]{5}"', '"kube-api-access-*"', json.dumps(pod)))
    for key in _SERVER_FIELDS:
        pod["metadata"].pop(key, None)
    annotations = pod["metadata"].get("annotations") or {}
    if AUDIT_ANNOTATION in annotations:
        annotations[AUDIT_ANNOTATION] = audit_of(pod)["policies"]  # type: ignore[index]
    pod.pop("status", None)
    return pod
