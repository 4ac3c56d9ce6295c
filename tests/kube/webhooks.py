"""The admission webhooks in front of a ControlPlane: a real OPA serving policies/ over TLS (the README's
``opa run --server --tls-cert-file ... --tls-private-key-file ... policies/ CONFIG``), and the webhook
configurations registered from ``airflow-opa-mutation admission manifests``' own output.

Shared by tests/kube/test_webhook.py and bench/admission_latency.py (the benchmark measures what the
tests prove), so both register exactly what the command prints. Failures raise ``WebhookError``: the
benchmark is not a pytest run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from airflow_opa_mutation.cli import cli
from airflow_opa_mutation.cli._local_opa import LocalOpa
from airflow_opa_mutation.cli.admission import NAME

from ..reliability.certs import TestCA
from .cluster import ControlPlane

LABEL = ("airflow-opa-mutation/admission", "enabled")  # the command's default --namespace-label
WEBHOOKS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")
PRIVILEGED = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "probe"},
    "spec": {"containers": [{"name": "c", "image": "busybox:1", "securityContext": {"privileged": True}}]},
}


class WebhookError(RuntimeError):
    pass


def serve_tls(folder: Path, paths: Sequence[Path], *, args: Sequence[str] = ()) -> tuple[LocalOpa, Path]:
    """OPA serving ``paths`` over TLS with a certificate for 127.0.0.1 from a new test CA in ``folder``:
    the started server and the CA's PEM file (the webhooks' ``--ca-file``)."""
    ca = TestCA(folder)
    served = ca.issue("opa", ips=("127.0.0.1",))
    opa = LocalOpa(
        list(paths),
        args=["--tls-cert-file", str(served.cert), "--tls-private-key-file", str(served.key), *args],
        scheme="https",
    ).start()
    return opa, ca.cert_path


def register(kube: ControlPlane, url: str, ca_file: Path, *options: str, name: str = NAME) -> list[dict[str, Any]]:
    """Run ``admission manifests --url URL --ca-file FILE OPTIONS`` and create the documents it prints,
    named ``name`` (another name registers them beside the default ones)."""
    output = CliRunner().invoke(
        cli, ["admission", "manifests", "--url", url, "--ca-file", str(ca_file), *options], catch_exceptions=False
    )
    if output.exit_code != 0:
        raise WebhookError(f"admission manifests exited with {output.exit_code}: {output.output}")
    documents = list(yaml.safe_load_all(output.stdout))
    for document, plural in zip(documents, WEBHOOKS, strict=True):
        document["metadata"]["name"] = name
        created = kube.request("POST", f"/apis/admissionregistration.k8s.io/v1/{plural}", document)
        if created.status != 201:
            raise WebhookError(f"{plural}: {created}")
    return documents


def unregister(kube: ControlPlane, name: str = NAME) -> None:
    for plural in WEBHOOKS:
        kube.request("DELETE", f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}")


def selected(kube: ControlPlane, name: str, *, labelled: bool = True, label: tuple[str, str] = LABEL) -> str:
    """Namespace ``name``, carrying ``label`` (the webhooks' default one) unless ``labelled`` is false, with
    its default ServiceAccount."""
    labels = dict([label]) if labelled else {}
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    result = kube.request("POST", "/api/v1/namespaces", body)
    if not (result.ok or result.status == 409):
        raise WebhookError(f"namespace {name}: {result}")
    kube.service_account(name, "default")
    return name


def wait_until_judged(kube: ControlPlane, namespace: str) -> None:
    """New webhook configurations take effect within about a second: wait until a privileged pod is
    refused by them (a readiness wait, not an assertion on time)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "denied by policy" in kube.create_pod(namespace, PRIVILEGED, dry_run=True).message:
            return
        time.sleep(0.2)
    raise WebhookError("the webhooks never judged a pod")
