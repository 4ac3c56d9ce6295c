"""docker-compose.yml's OPA sidecar, run as a container (testcontainers), with the real hook against it:
the pinned image runs the compose command, loads the signed bundle, mutates and denies pods, and ships
masked decision logs to the collector."""

from __future__ import annotations

import json

import pytest
import requests
from kubernetes import client as k8s

from airflow_opa_mutation import MutationHook, PodDenied, Settings
from airflow_opa_mutation._version import OPA_VERSION
from airflow_opa_mutation.hook import AUDIT_ANNOTATION

from ..bundles.conftest import BUNDLE, MARKER, RESOURCE, SECRET, injected_marker, secret_pod
from ..conftest import worker_pod
from .conftest import REVISION, decide, opa_service


def _pinned_opa() -> str:
    return OPA_VERSION  # the package holds the pin; scripts/versions.env reads it from there


@pytest.fixture
def hook(sidecar):
    hook = MutationHook(Settings(url=sidecar.url, require_bundles=True))
    yield hook
    hook.close()


def test_the_container_is_the_pinned_opa_running_the_compose_command(sidecar):
    attrs = sidecar.attrs()
    service = opa_service()
    assert attrs["Config"]["Cmd"] == service["command"]  # as the engine recorded it, not as we meant it
    assert attrs["Config"]["Entrypoint"] == ["/opa"]
    assert attrs["Config"]["User"] == "1000:1000"  # the official image's non-root user
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert {"/etc/opa/config.yaml", "/etc/opa/mask.rego", "/etc/opa/keys/airflow_bundle.pub.pem"} <= set(mounts)
    assert not any(m["RW"] for m in mounts.values())
    body = decide(sidecar, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "base", "image": "x:1"}]}})
    assert body["provenance"]["version"] == _pinned_opa()
    assert body["provenance"]["bundles"] == {BUNDLE: {"revision": REVISION}}  # verified with the key mounted
    assert requests.get(f"{sidecar.url}/health?bundles=true", timeout=2).status_code == 200
    # OPA's API as compose ships it (deploy/opa/authz.rego): the mask cannot be replaced, nothing written.
    assert {"/etc/opa/authz.rego", "/etc/opa/bundle-tls/tls.crt"} <= set(mounts)
    empty_mask = "package system.log\n\nmask := set()\n"
    assert requests.put(f"{sidecar.url}/v1/policies/etc/opa/mask.rego", data=empty_mask, timeout=5).status_code == 401
    assert requests.put(f"{sidecar.url}/v1/data/airflow_opa_mutation_doctor_probe", json={}, timeout=5).status_code == 401


def test_hook_mutates_a_pod_with_the_signed_bundles_policies(sidecar, hook):
    pod = secret_pod("container-mutated")
    hook(pod)
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env[MARKER] == REVISION, "the organisation's configuration inside the bundle is applied"
    assert env["AIRFLOW_CONN_DB"] == SECRET, "the pod keeps its own values"
    assert pod.spec.containers[0].security_context.allow_privilege_escalation is False  # shipped defaults
    audit = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert audit["revision"] == f"{BUNDLE}@{REVISION}"


def test_hook_refuses_a_privileged_pod(sidecar, hook):
    pod = worker_pod("container-privileged")
    pod.spec.containers[0].security_context = k8s.V1SecurityContext(privileged=True)
    before = pod.to_dict()
    with pytest.raises(PodDenied, match="deny_privileged") as denied:
        hook(pod)
    assert any(m.policy == "deny_privileged" for m in denied.value.messages)
    assert pod.to_dict() == before, "a denied pod is left as it was"


def test_decision_logs_reach_the_collector_masked_and_flushed_on_shutdown(
    start_container, container_bundle_server, container_collector, make_bundle
):
    """Its own container, stopped with SIGTERM: OPA's reporting interval (5-15 s in deploy/opa/config.yaml)
    is not shortened, so the events arrive through the upload OPA makes when it shuts down."""
    container_bundle_server.publish(RESOURCE, make_bundle(REVISION, scope=opa_service()["environment"]["AOM_DEPLOYMENT"]))
    sidecar = start_container()
    hook = MutationHook(Settings(url=sidecar.url))
    try:
        pod = secret_pod("container-logged")
        outcome = hook.evaluate(pod)
    finally:
        hook.close()
    assert outcome.decision is not None and outcome.decision.decision_id
    assert injected_marker(outcome.after) == REVISION
    sidecar.stop_gracefully()

    def logged(collector):
        return next((e for e in collector.events if e.get("decision_id") == outcome.decision.decision_id), None)

    event = container_collector.wait_for(logged, timeout=5)
    assert event["path"] == "airflow/pod/decision"
    assert event["bundles"] == {BUNDLE: {"revision": REVISION}}
    assert event["labels"]["deployment"] == opa_service()["environment"]["AOM_DEPLOYMENT"]
    assert event["input"]["pod"]["metadata"]["name"] == "container-logged"
    assert event["input"]["pod"]["spec"]["containers"][0]["env"] == [
        {"name": "AIRFLOW_IS_K8S_EXECUTOR_POD"},
        {"name": "AIRFLOW_CONN_DB"},
    ]
    assert "/input/pod/spec/containers/0/env/1/value" in event["erased"]
    assert SECRET.encode() not in b"".join(container_collector.raw_logs)
    assert any(s.get("bundles", {}).get(BUNDLE, {}).get("active_revision") == REVISION
               for s in container_collector.statuses), "status reports reach the collector too"
