"""The admission webhooks of a real kube-apiserver (tests/kube/cluster.py), served by a real OPA over TLS
from policies/ itself and registered from ``airflow-opa-mutation admission manifests``' own output: the
``webhook`` fixture (a pytest plugin, ``pytest_plugins`` in tests/conftest.py) and its helpers, shared by
tests/kube/test_webhook.py and tests/airflow/test_kube_webhook_e2e.py (Airflow with the webhook on).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_opa_mutation import AUDIT_ANNOTATION
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES
from .cluster import ControlPlane
from .webhooks import register, selected, serve_tls, unregister, wait_until_judged

SCHEDULER = ("wh-scheduler", "airflow-scheduler")  # a trusted requester's namespace and service account
SCHEDULER_USER = f"system:serviceaccount:{SCHEDULER[0]}:{SCHEDULER[1]}"
TRUST = {"admission": {"trusted_requesters": [{"username": SCHEDULER_USER}]}}


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


@pytest.fixture(scope="module")
def webhook(kube_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    folder = tmp_path_factory.mktemp("webhook")
    config = folder / "config.json"
    config.write_text(json.dumps({"airflow": {"pod": {"config": TRUST}}}))
    # The README's command line: opa run --server --tls-cert-file ... --tls-private-key-file ... policies/ CONFIG
    opa, ca_file = serve_tls(folder, [POLICIES, config])
    documents = register(kube_cluster, opa.url, ca_file)
    hook = Webhook(opa, ca_file, documents)
    hook.configure({})
    wait_until_judged(kube_cluster, selected(kube_cluster, "wh-probe"))
    yield hook
    unregister(kube_cluster)
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
