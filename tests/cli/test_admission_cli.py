"""``admission manifests``: the webhook configurations, their defaults and options, and that what they send
to OPA is exactly what policies/lib/admission.rego judges (a real OPA). tests/kube/test_webhook.py
registers them with a real API server."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from airflow_opa_mutation.cli.admission import MUTATING_RULES, PATHS, RULES

from ..reliability.certs import TestCA


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return TestCA(tmp_path_factory.mktemp("ca")).cert_path


def documents(run, *args: str) -> list[dict[str, Any]]:
    result = run("admission", "manifests", *args)
    assert result.exit_code == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_defaults(run, ca_file):
    mutating, validating = documents(run, "--url", "https://opa.example.com:8443/", "--ca-file", str(ca_file))
    assert mutating["kind"] == "MutatingWebhookConfiguration"
    assert validating["kind"] == "ValidatingWebhookConfiguration"
    for document, answer in ((mutating, "mutate"), (validating, "validate")):
        assert document["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert document["metadata"]["name"] == "airflow-opa-mutation"
        [webhook] = document["webhooks"]
        assert webhook["name"] == f"{answer}.pods.airflow-opa-mutation"
        assert webhook["clientConfig"]["url"] == f"https://opa.example.com:8443/v0/data/airflow/pod/admission/{answer}"
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca_file.read_bytes()
        assert webhook["namespaceSelector"] == {
            "matchLabels": {"airflow-opa-mutation/admission": "enabled"},
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
            ],
        }
        assert (webhook["failurePolicy"], webhook["timeoutSeconds"], webhook["sideEffects"]) == ("Fail", 5, "None")
        assert webhook["admissionReviewVersions"] == ["v1"]
        sent = {
            (g, r, op)
            for rule in webhook["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for op in rule["operations"]
        }
        rules = MUTATING_RULES if answer == "mutate" else RULES
        assert sent == {(g, r, op) for g, r, ops in rules for op in ops}
    # a pod UPDATE is validated, never patched (most of a running pod's spec is immutable)
    assert ("", "pods", "UPDATE") in {(g, r, op) for g, r, ops in RULES for op in ops}
    assert all(r != "pods" or ops == ("CREATE",) for _, r, ops in MUTATING_RULES)
    assert mutating["webhooks"][0]["reinvocationPolicy"] == "IfNeeded"
    assert "reinvocationPolicy" not in validating["webhooks"][0]


def test_service_label_policy_and_timeout(run, ca_file):
    args = [
        "--service",
        "opa-system/opa:8443",
        "--ca-file",
        str(ca_file),
        "--namespace-label",
        "example.com/tasks=",
        "--failure-policy",
        "Ignore",
        "--timeout-seconds",
        "10",
    ]
    for document, answer in zip(documents(run, *args), ("mutate", "validate"), strict=True):
        [webhook] = document["webhooks"]
        assert webhook["clientConfig"]["service"] == {
            "namespace": "opa-system",
            "name": "opa",
            "port": 8443,
            "path": PATHS[answer],
        }
        assert "url" not in webhook["clientConfig"]
        selector = webhook["namespaceSelector"]
        assert selector["matchLabels"] == {"example.com/tasks": ""}
        assert selector["matchExpressions"][0]["values"] == ["kube-system", "opa-system"]
        assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Ignore", 10)
    [mutating, _] = documents(run, "--service", "opa-system/opa", "--ca-file", str(ca_file))
    assert mutating["webhooks"][0]["clientConfig"]["service"]["port"] == 443
    [mutating, _] = documents(run, "--url", "https://10.0.0.1", "--ca-file", str(ca_file), "--opa-namespace", "opa")
    assert mutating["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "opa"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "https://a", "--service", "n/s"], "exactly one of --url and --service"),
        ([], "exactly one of --url and --service"),
        (["--url", "http://opa:8181"], "must be https"),
        (["--url", "https://opa/x?y=1"], "must be https"),
        (["--service", "opa"], "NAMESPACE/NAME"),
        (["--service", "Opa/x"], "NAMESPACE/NAME"),
        (["--service", "a/b:70000"], "out of range"),
        (["--url", "https://a", "--namespace-label", "novalue"], "KEY=VALUE"),
        (["--url", "https://a", "--namespace-label", "bad key=x"], "KEY=VALUE"),
        (["--url", "https://a", "--namespace-label", "k=bad value"], "KEY=VALUE"),
        (["--url", "https://a", "--opa-namespace", "Bad_NS"], "not a namespace name"),
        (["--url", "https://a", "--timeout-seconds", "0"], "0"),
        (["--url", "https://a", "--failure-policy", "fail"], "fail"),
    ],
)
def test_bad_arguments_are_usage_errors(run, ca_file, args, message):
    result = run("admission", "manifests", "--ca-file", str(ca_file), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_ca_file_must_hold_a_certificate(run, tmp_path):
    for path, message in ((tmp_path / "missing.pem", "No such file"), (tmp_path / "empty.pem", "no PEM certificate")):
        if path.name == "empty.pem":
            path.write_text("not a certificate\n")
        result = run("admission", "manifests", "--url", "https://a", "--ca-file", str(path))
        assert result.exit_code == 2
        assert message in result.stderr


# -- the rules and the Rego agree ---------------------------------------------------------------------

_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "base", "image": "busybox:1"}]},
}
_TEMPLATE = {"metadata": {}, "spec": _POD["spec"]}
_OBJECTS = {
    "pods": _POD,
    "pods/ephemeralcontainers": _POD,
    "jobs": {"kind": "Job", "spec": {"template": _TEMPLATE}},
    "cronjobs": {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": _TEMPLATE}}}},
    **{
        r: {"kind": r, "spec": {"template": _TEMPLATE}}
        for r in ("deployments", "statefulsets", "replicasets", "daemonsets")
    },
    "configmaps": {"kind": "ConfigMap", "data": {}},
    "pods/status": _POD,
}
_GROUPS = {
    "jobs": "batch",
    "cronjobs": "batch",
    "deployments": "apps",
    "statefulsets": "apps",
    "replicasets": "apps",
    "daemonsets": "apps",
}


def test_what_the_webhooks_are_sent_is_what_the_rego_judges(library_opa):
    """Every (resource, operation): the Rego judges it (a pod to decide on) exactly when RULES send it."""
    opa = library_opa({})
    sent = {(r, op) for _, r, ops in RULES for op in ops}
    judged = set()
    with requests.Session() as session:
        session.trust_env = False
        for resource, operation in itertools.product(_OBJECTS, ("CREATE", "UPDATE", "DELETE", "CONNECT")):
            name, _, sub = resource.partition("/")
            request = {
                "uid": "u",
                "operation": operation,
                "namespace": "n",
                "object": _OBJECTS[resource],
                "resource": {"group": _GROUPS.get(name, ""), "version": "v1", "resource": name},
            }
            if sub:
                request["subResource"] = sub
            answer = session.post(
                f"{opa.url}/v1/data/airflow/pod/admission/pod", json={"input": {"request": request}}, timeout=30
            )
            answer.raise_for_status()
            if "result" in answer.json():
                judged.add((resource, operation))
    assert judged == sent
