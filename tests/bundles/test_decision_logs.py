"""4. Decision logs and status reach a collector on loopback, masked by deploy/opa/mask.rego.

OPA (deploy/opa/config.yaml) uploads gzip-compressed JSON batches to ``POST /logs`` and status reports to
``POST /status`` of the collector service; the mask is loaded from the sidecar's disk, not the bundle.
"""

from __future__ import annotations

import json

import pytest

from airflow_opa_mutation import InvalidDecision
from airflow_opa_mutation.hook import AUDIT_ANNOTATION

from .conftest import BUNDLE, MARKER, RESOURCE, SECRET, record, secret_pod, wait_active


def _events_by_id(collector, ids: set[str]):
    def found(c):
        by_id = {e.get("decision_id"): e for e in c.events}
        return by_id if ids <= set(by_id) else None

    return collector.wait_for(found)


def test_every_decision_reaches_the_collector_with_the_hooks_decision_id_and_secrets_masked(
    start_sidecar, bundle_server, make_bundle, make_hook, collector
):
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar()
    wait_active(opa, "rev-1")
    hook = make_hook(opa)

    outcomes = [hook.evaluate(secret_pod(f"logged-{i}")) for i in range(3)]
    applied = secret_pod("logged-applied")
    hook(applied)
    ids = {o.decision.decision_id for o in outcomes if o.decision}
    assert len(ids) == 3 and None not in ids
    audit = json.loads(applied.metadata.annotations[AUDIT_ANNOTATION])
    ids.add(audit["decision_id"])

    events = _events_by_id(collector, ids)
    for decision_id in ids:
        event = events[decision_id]
        assert event["path"] == "airflow/pod/decision"
        assert event["bundles"] == {BUNDLE: {"revision": "rev-1"}}
        assert event["labels"]["deployment"] == "pytest"
        assert event["labels"]["app"] == "airflow-opa-mutation"
        erased = set(event["erased"])
        # Every env value of the input pod (mask.rego: all values go, the secret is one of them) ...
        assert {"/input/pod/spec/containers/0/env/0/value", "/input/pod/spec/containers/0/env/1/value"} <= erased
        logged_env = event["input"]["pod"]["spec"]["containers"][0]["env"]
        assert logged_env == [{"name": "AIRFLOW_IS_K8S_EXECUTOR_POD"}, {"name": "AIRFLOW_CONN_DB"}]
        # ... and every env value the decision's patch writes (the injected POLICY_REVISION).
        env_ops = [i for i, op in enumerate(event["result"]["patch"]) if "/env" in op["path"]]
        assert env_ops, "env_injection added POLICY_REVISION"
        assert {f"/result/patch/{i}/value" for i in env_ops} <= erased
        assert all("value" not in event["result"]["patch"][i] for i in env_ops)
        # The rest of the input and result stay for auditing.
        assert event["input"]["pod"]["metadata"]["name"].startswith("logged-")
        assert event["input"]["airflow"]["dag_id"] == "example_dag"
        assert event["input"]["request"]["mode"] == "enforce"
    everything = b"".join(collector.raw_logs)
    assert SECRET.encode() not in everything
    assert b"s3cr3t-hunter2" not in everything
    sizes = [len(json.dumps(events[i]).encode()) for i in ids]
    record("decision logs", "event size, 1-container worker pod (JSON, before gzip)", max(sizes), "bytes")


def test_decisions_before_any_bundle_is_activated_are_masked_too(start_sidecar, bundle_server, make_hook, collector):
    """Why the mask is loaded from the sidecar's disk and not shipped in the bundle: OPA answers (and logs)
    queries before the first revision is activated; a bundled mask would not exist yet."""
    opa = start_sidecar()  # nothing published: the bundle server answers 404
    pod = secret_pod("before-activation")
    with pytest.raises(InvalidDecision, match="undefined"):
        make_hook(opa)(pod)

    def logged(c):
        return [e for e in c.events if e.get("input", {}).get("pod", {}).get("metadata", {}).get("name") == pod.metadata.name]

    [event] = collector.wait_for(logged)
    assert "result" not in event, "undefined: no bundle, no policy"
    assert "/input/pod/spec/containers/0/env/1/value" in event["erased"]
    assert SECRET.encode() not in b"".join(collector.raw_logs)


def test_status_reports_the_active_revision_to_the_collector(start_sidecar, bundle_server, make_bundle, collector):
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar()
    wait_active(opa, "rev-1")

    def reported(c):
        return [s for s in c.statuses if s.get("bundles", {}).get(BUNDLE, {}).get("active_revision") == "rev-1"]

    status = collector.wait_for(reported)[-1]
    assert status["labels"]["deployment"] == "pytest"
    assert status["labels"]["version"]  # OPA's version, for fleet inventories
    assert status["plugins"]["bundle"]["state"] == "OK"
    assert status["plugins"]["decision_logs"]["state"] == "OK"
    assert MARKER not in json.dumps(status)  # status carries no policy data
