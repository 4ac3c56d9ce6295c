"""deploy/opa/mask.rego on a real OPA with console decision logs: secrets never reach the log."""

from __future__ import annotations

import json
import logging
import time

from kubernetes import client as k8s

from airflow_opa_mutation import AUDIT_ANNOTATION

from ..conftest import REPO, decision_policy, worker_pod

MASK = REPO / "deploy" / "opa" / "mask.rego"

POLICY = """
decision := {"patch": [
    {"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "INJECTED", "value": "injected-s3cret-value"},
     "policy": "env_injection"},
    {"op": "add", "path": "/metadata/labels/masked", "value": "yes", "policy": "labels"},
    {"op": "add", "path": "/spec/containers/-", "policy": "sidecar", "value": {
        "name": "proxy", "image": "envoy:1.30",
        "env": [{"name": "UPSTREAM_TOKEN", "value": "sidecar-env-secret-77"}],
        "readinessProbe": {"httpGet": {"port": 9901, "httpHeaders": [
            {"name": "Authorization", "value": "Bearer sidecar-probe-token-55"}]}}}},
]}
"""

SECRETS = ("postgres://airflow:hunter2-db-password@db", "init-container-secret-42", "Bearer probe-token-9f8e",
           "injected-s3cret-value", "sidecar-env-secret-77", "sidecar-probe-token-55")


def _decision_events(logs: str) -> list[dict]:
    events = []
    for line in logs.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("msg") == "Decision Log":
            events.append(event)
    return events


def test_console_decision_log_has_env_values_and_tokens_erased(start_opa, make_hook, hook_log):
    # LocalOpa passes --log-level error; console decision logs are printed regardless of the level.
    opa = start_opa(decision_policy(POLICY), paths=[MASK], args=["--set", "decision_logs.console=true"])
    hook = make_hook(opa)
    pod = worker_pod("masked-pod")
    base = pod.spec.containers[0]
    base.env.append(k8s.V1EnvVar(name="AIRFLOW_CONN_DB", value=SECRETS[0]))
    base.readiness_probe = k8s.V1Probe(http_get=k8s.V1HTTPGetAction(
        port=8080, path="/ready", http_headers=[k8s.V1HTTPHeader(name="Authorization", value=SECRETS[2])]))
    pod.spec.init_containers = [k8s.V1Container(name="init", image="busybox",
                                                env=[k8s.V1EnvVar(name="TOKEN", value=SECRETS[1])])]
    hook(pod)
    assert pod.metadata.labels["masked"] == "yes"
    audit = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    decision_id = audit["decision_id"]
    assert any(f"decision_id={decision_id}" in r.getMessage() for r in hook_log.records if r.levelno == logging.INFO)

    deadline = time.monotonic() + 10
    events: list[dict] = []
    while time.monotonic() < deadline:
        events = [e for e in _decision_events(opa.logs()) if e.get("decision_id") == decision_id]
        if events:
            break
        time.sleep(0.05)
    assert len(events) == 1, opa.logs()[-2000:]
    event = events[0]
    assert event["path"] == "airflow/pod/decision"
    erased = set(event["erased"])
    assert {
        "/input/pod/spec/containers/0/env/0/value",  # AIRFLOW_IS_K8S_EXECUTOR_POD: every value goes
        "/input/pod/spec/containers/0/env/1/value",
        "/input/pod/spec/initContainers/0/env/0/value",
        "/input/pod/spec/containers/0/readinessProbe/httpGet/httpHeaders/0/value",
        "/result/patch/0/value",
        "/result/patch/2/value/env/0/value",
        "/result/patch/2/value/readinessProbe/httpGet/httpHeaders/0/value",
    } <= erased
    logged_pod = event["input"]["pod"]
    assert logged_pod["spec"]["containers"][0]["env"][1] == {"name": "AIRFLOW_CONN_DB"}
    assert logged_pod["spec"]["initContainers"][0]["env"][0] == {"name": "TOKEN"}
    assert logged_pod["metadata"]["name"] == "masked-pod"  # the rest of the input is still there
    assert event["result"]["patch"][1]["value"] == "yes"
    assert event["result"]["patch"][2]["value"]["env"] == [{"name": "UPSTREAM_TOKEN"}]
    assert pod.spec.containers[1].env[0].value == "sidecar-env-secret-77"  # masked in the log only
    everything = opa.logs()
    for secret in SECRETS:
        assert secret not in everything
