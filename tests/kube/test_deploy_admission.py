"""deploy/kubernetes/admission-opa.yaml and ``admission manifests --service`` sent to a real kube-apiserver with
server-side dry run (``dryRun=All``): validated and defaulted as a cluster would, nothing stored.

The Deployment's pod goes in at Pod Security "restricted" (enforce and warn) as written, and after the
library's own shipped policies (the hook with the shipped configuration): the backstop's OPA passes the
controls it enforces on everyone else.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from click.testing import CliRunner

from airflow_opa_mutation import MutationHook, Settings, _pod_codec
from airflow_opa_mutation.cli import cli
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES
from ..reliability.certs import TestCA
from ..test_kubernetes_manifests import K8S, decode
from .cluster import ControlPlane

DOCUMENTS = list(yaml.safe_load_all((K8S / "admission-opa.yaml").read_text()))
BY_KIND = {document["kind"]: document for document in DOCUMENTS}
DEPLOYMENT, SERVICE, BUDGET = BY_KIND["Deployment"], BY_KIND["Service"], BY_KIND["PodDisruptionBudget"]
PLURALS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Service": "/api/v1/namespaces/{ns}/services",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}
WEBHOOKS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")


def template_pod(namespace: str) -> dict[str, Any]:
    template = copy.deepcopy(DEPLOYMENT["spec"]["template"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": "airflow-opa-admission-0", "namespace": namespace},
        "spec": template["spec"],
    }


def test_the_file_holds_a_deployment_a_service_and_a_budget_that_decode_as_the_models():
    assert sorted(BY_KIND) == ["Deployment", "PodDisruptionBudget", "Service"]
    decode(DEPLOYMENT, "V1Deployment")
    decode(SERVICE, "V1Service")
    decode(BUDGET, "V1PodDisruptionBudget")
    spec = DEPLOYMENT["spec"]
    assert spec["replicas"] == 2 and BUDGET["spec"]["minAvailable"] == 1
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"] == SERVICE["spec"]["selector"] == BUDGET["spec"]["selector"]["matchLabels"]
    assert labels == SERVICE["spec"]["selector"]
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    [opa] = pod["containers"]
    args = opa["args"]
    assert "--addr=0.0.0.0:8443" in args and "--skip-version-check" in args
    assert "--config-file=/etc/opa/config.yaml" in args, "the sidecar's configuration: the signed bundle"
    mounts = {m["name"]: m for m in opa["volumeMounts"]}
    assert mounts["opa-tls"]["readOnly"] is True and mounts["opa-config"]["readOnly"] is True
    tls = next(v for v in pod["volumes"] if v["name"] == "opa-tls")
    assert f"--tls-cert-file={mounts['opa-tls']['mountPath']}/tls.crt" in args
    assert f"--tls-private-key-file={mounts['opa-tls']['mountPath']}/tls.key" in args
    assert tls["secret"]["secretName"] == "airflow-opa-admission-tls"
    [port] = SERVICE["spec"]["ports"]
    assert port["port"] == 443 and {"name": "https", "containerPort": 8443} in opa["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert opa[probe]["httpGet"]["port"] == "opa-diag"
    assert opa["readinessProbe"]["httpGet"]["path"] == "/health?bundles=true"


def test_every_object_is_accepted_by_server_side_dry_run(kube_cluster: ControlPlane, kube_namespace):
    namespace = kube_namespace("restricted", warn="restricted")
    for document in DOCUMENTS:
        path = PLURALS[document["kind"]].format(ns=namespace)
        result = kube_cluster.request("POST", path, document, dryRun="All")
        assert result.status == 201, (document["kind"], result)
        # Pod Security warns on a workload whose template it would refuse; none here
        assert result.warnings == [], (document["kind"], result.warnings)
        assert kube_cluster.request("GET", f"{path}/{document['metadata']['name']}").status == 404


def test_the_pod_is_admitted_at_restricted_as_written_and_after_the_librarys_shipped_policies(
    kube_cluster: ControlPlane, kube_namespace
):
    namespace = kube_namespace("restricted", warn="restricted")
    pod = template_pod(namespace)
    written = kube_cluster.create_pod(namespace, pod, dry_run=True)
    assert written.status == 201 and written.warnings == [], written

    with LocalOpa([POLICIES]) as opa:
        hook = MutationHook(Settings(url=opa.url))
        try:
            model = _pod_codec.decode(copy.deepcopy(pod))
            hook(model)  # raises PodDenied if any shipped policy refused it
        finally:
            hook.close()
    sent = _pod_codec.encode(model)
    assert sent["spec"]["containers"] == pod["spec"]["containers"], "the shipped policies leave OPA alone"
    after = kube_cluster.create_pod(namespace, sent, dry_run=True)
    assert after.status == 201 and after.warnings == [], after
    assert kube_cluster.list_pods(namespace) == []


def test_the_webhook_configurations_for_the_service_are_accepted_and_name_it(kube_cluster: ControlPlane,
                                                                           kube_namespace, tmp_path):
    opa_namespace = kube_namespace("restricted", prefix="opa")
    ca = TestCA(tmp_path)
    # docs/helm.md, "Rolling out the webhook": first Ignore, then Fail
    for policy in ("Ignore", "Fail"):
        output = CliRunner().invoke(cli, [
            "admission", "manifests", "--service", f"{opa_namespace}/{SERVICE['metadata']['name']}",
            "--ca-file", str(ca.cert_path), "--failure-policy", policy,
        ], catch_exceptions=False)
        assert output.exit_code == 0, output.output
        documents = list(yaml.safe_load_all(output.stdout))
        for document, plural in zip(documents, WEBHOOKS, strict=True):
            [webhook] = document["webhooks"]
            service = webhook["clientConfig"]["service"]
            assert (service["namespace"], service["name"], service["port"]) == (
                opa_namespace, SERVICE["metadata"]["name"], SERVICE["spec"]["ports"][0]["port"])
            assert webhook["failurePolicy"] == policy
            [unselected] = webhook["namespaceSelector"]["matchExpressions"]
            assert unselected["operator"] == "NotIn" and {"kube-system", opa_namespace} <= set(unselected["values"])
            result = kube_cluster.request("POST", f"/apis/admissionregistration.k8s.io/v1/{plural}", document,
                                          dryRun="All")
            assert result.status == 201, result
            assert result.body["webhooks"][0]["clientConfig"]["service"] == service
