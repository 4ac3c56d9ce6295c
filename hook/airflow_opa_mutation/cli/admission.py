"""``admission manifests``: the webhook configurations that put the policy library in front of the API server.

OPA serves the library's admission entry point (policies/lib/admission.rego) itself, over TLS:
``POST /v0/data/airflow/pod/admission/mutate`` answers the MutatingWebhookConfiguration,
``.../validate`` the ValidatingWebhookConfiguration (``/v0`` takes the AdmissionReview as its input and
answers with the document). This command prints both configurations as multi-document YAML for
``kubectl apply -f -``. What they select mirrors what the Rego judges (:data:`RULES`, tested equal); the
mutating one is sent only what the Rego can patch (:data:`MUTATING_RULES`).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from ._errors import CliError

#: Where OPA serves the two answers (``/v0``: the body is the input, the answer the document).
PATHS = {
    "mutate": "/v0/data/airflow/pod/admission/mutate",
    "validate": "/v0/data/airflow/pod/admission/validate",
}
DEFAULT_LABEL = "airflow-opa-mutation/admission=enabled"
NAME = "airflow-opa-mutation"
#: What the mutating webhook is sent, as (API group, resource, operations).
MUTATING_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "pods", ("CREATE",)),
    ("", "pods/ephemeralcontainers", ("UPDATE",)),  # kubectl debug
    ("batch", "jobs", ("CREATE",)),  # a Job's pod template is immutable
    ("batch", "cronjobs", ("CREATE", "UPDATE")),
    ("apps", "deployments", ("CREATE", "UPDATE")),
    ("apps", "statefulsets", ("CREATE", "UPDATE")),
    ("apps", "replicasets", ("CREATE", "UPDATE")),
    ("apps", "daemonsets", ("CREATE", "UPDATE")),
)
#: What the validating webhook is sent: everything policies/lib/admission.rego judges. A running pod's
#: images can be changed (UPDATE), which the Rego judges but never patches: validating only.
RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (*MUTATING_RULES, ("", "pods", ("UPDATE",)))
# Kubernetes label syntax: an optional DNS-subdomain prefix, a name, and a value (possibly empty).
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _rules(rules: tuple[tuple[str, str, tuple[str, ...]], ...]) -> list[dict[str, Any]]:
    """One rule per group and operations, resources listed together (as kubectl prints them)."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for group, resource, operations in rules:
        grouped.setdefault((group, operations), []).append(resource)
    return [
        {
            "apiGroups": [group],
            "apiVersions": ["v1"],
            "operations": list(operations),
            "resources": resources,
            "scope": "Namespaced",
        }
        for (group, operations), resources in grouped.items()
    ]


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not _LABEL_KEY.match(key) or len(key.rpartition("/")[2]) > 63 or not _LABEL_VALUE.match(value):
        raise CliError(f"--namespace-label {text!r} is not KEY=VALUE with a Kubernetes label key and value")
    return key, value


def _service(text: str) -> dict[str, Any]:
    match = re.fullmatch(r"([^/:]+)/([^/:]+)(?::(\d+))?", text)
    if not match or not _DNS_LABEL.match(match[1]) or not _DNS_LABEL.match(match[2]):
        raise CliError(f"--service {text!r} is not NAMESPACE/NAME[:PORT]")
    service: dict[str, Any] = {"namespace": match[1], "name": match[2]}
    port = int(match[3] or 443)
    if not 1 <= port <= 65535:
        raise CliError(f"--service {text!r}: port {port} is out of range")
    service["port"] = port
    return service


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise CliError(f"--url {text!r} must be https://HOST[:PORT][/PREFIX], without query, fragment or user")
    return text.rstrip("/")


def _ca_bundle(path: Path) -> str:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise CliError(f"--ca-file {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise CliError(f"--ca-file {path} holds no PEM certificate")
    return base64.b64encode(pem).decode("ascii")


def manifests(
    *,
    url: str | None,
    service: str | None,
    ca_file: Path,
    namespace_label: str,
    failure_policy: str,
    timeout_seconds: int,
    opa_namespace: str | None = None,
) -> list[dict[str, Any]]:
    """The MutatingWebhookConfiguration and the ValidatingWebhookConfiguration, as documents."""
    if (url is None) == (service is None):
        raise CliError("give exactly one of --url and --service")
    key, value = _label(namespace_label)
    ca_bundle = _ca_bundle(ca_file)
    target = _service(service) if service else None
    own = opa_namespace or (target["namespace"] if target else None)
    if own is not None and not _DNS_LABEL.match(own):
        raise CliError(f"--opa-namespace {own!r} is not a namespace name")
    excluded = sorted({"kube-system", *([own] if own else [])})
    documents = []
    for kind, answer in (("MutatingWebhookConfiguration", "mutate"), ("ValidatingWebhookConfiguration", "validate")):
        client: dict[str, Any] = (
            {"service": {**target, "path": PATHS[answer]}} if target else {"url": _url(str(url)) + PATHS[answer]}
        )
        webhook: dict[str, Any] = {
            "name": f"{answer}.pods.{NAME}",
            "clientConfig": {**client, "caBundle": ca_bundle},
            "rules": _rules(MUTATING_RULES if answer == "mutate" else RULES),
            "namespaceSelector": {
                "matchLabels": {key: value},
                "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded}],
            },
            "failurePolicy": failure_policy,
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "timeoutSeconds": timeout_seconds,
            "admissionReviewVersions": ["v1"],
        }
        if answer == "mutate":
            webhook["reinvocationPolicy"] = "IfNeeded"
        documents.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": NAME, "labels": {"app.kubernetes.io/name": NAME}},
                "webhooks": [webhook],
            }
        )
    return documents


@click.group()
def admission() -> None:
    """Print the Kubernetes admission webhook configurations that put the policies in front of the API server.

    OPA serves them itself, over TLS, from the same policies (README.md, "Admission backstop").
    """


@admission.command("manifests")
@click.option("--url", help="OPA's https base URL as the API server reaches it (clientConfig.url).")
@click.option("--service", help="OPA's Service instead of --url: NAMESPACE/NAME[:PORT] (port 443 by default).")
@click.option(
    "--ca-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM CA certificate(s) that signed OPA's serving certificate (the caBundle).",
)
@click.option(
    "--namespace-label",
    default=DEFAULT_LABEL,
    show_default=True,
    help="KEY=VALUE: the label of the namespaces the webhooks judge.",
)
@click.option("--failure-policy", type=click.Choice(["Fail", "Ignore"]), default="Fail", show_default=True)
@click.option("--timeout-seconds", type=click.IntRange(1, 30), default=5, show_default=True)
@click.option(
    "--opa-namespace",
    help="The namespace OPA runs in, never selected (default: the --service namespace); kube-system never is.",
)
def manifests_command(  # noqa: PLR0917 - one parameter per click option
    url: str | None,
    service: str | None,
    ca_file: Path,
    namespace_label: str,
    failure_policy: str,
    timeout_seconds: int,
    opa_namespace: str | None,
) -> None:
    """Print the MutatingWebhookConfiguration and ValidatingWebhookConfiguration as YAML (kubectl apply -f -).

    Judged: pods on CREATE, pods and pods/ephemeralcontainers on UPDATE (validated only: a pod UPDATE is
    refused for what it newly violates, or in full when it changes the spec), and the pod templates of Jobs, CronJobs,
    Deployments, StatefulSets, ReplicaSets and DaemonSets, in namespaces carrying the label; never
    kube-system nor OPA's own namespace. Roll out with --failure-policy Ignore first, then Fail.
    """
    import yaml

    documents = manifests(
        url=url,
        service=service,
        ca_file=ca_file,
        namespace_label=namespace_label,
        failure_policy=failure_policy,
        timeout_seconds=timeout_seconds,
        opa_namespace=opa_namespace,
    )
    click.echo(yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True), nl=False)


__all__ = ["MUTATING_RULES", "PATHS", "RULES", "admission", "manifests"]
