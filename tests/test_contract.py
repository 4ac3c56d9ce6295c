"""The decision contract, end to end against a real OPA: every member, shape and error."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from kubernetes import client as k8s

import airflow_opa_mutation as aom
from airflow_opa_mutation import (
    AUDIT_ANNOTATION,
    ConfigError,
    InvalidDecision,
    OpaUnavailable,
    PatchRejected,
    PodDenied,
)
from airflow_opa_mutation._pod_codec import PYDANTIC_MODELS

from .clientprobe import ClientProbe
from .conftest import decision_policy, worker_pod


def serve(start_opa, make_hook, body, **settings):
    return make_hook(start_opa(decision_policy(body)), **settings)


def test_models_generation_is_the_installed_one():
    import kubernetes

    major = int(kubernetes.__version__.split(".")[0])
    assert PYDANTIC_MODELS is (major >= 37)


# -- what OPA receives ---------------------------------------------------------------------------------


def test_input_carries_pod_json_airflow_ids_and_request(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [{"op": "add", "path": "/metadata/annotations/echo", "value": json.marshal(input)}]}
    """, audit_annotation=False)
    expected_pod_json = k8s.ApiClient().sanitize_for_serialization(copy.deepcopy(pod))
    hook(pod)
    seen = json.loads(pod.metadata.annotations["echo"])
    assert seen["pod"] == expected_pod_json
    assert seen["airflow"] == {
        "dag_id": "example_dag",
        "task_id": "extract",
        "run_id": "manual__2026-11-25T12:00:00+00:00",  # the unsanitized annotation wins over the label
        "try_number": 1,
        "map_index": -1,
        "launcher": "kubernetes_executor",
        # called outside Airflow: only the pod vouches for these (docs/threat-model.md)
        "untrusted": ["dag_id", "task_id", "run_id", "try_number", "map_index", "launcher"],
    }
    assert seen["request"]["mode"] == "enforce"
    assert seen["request"]["version"] == aom.__version__
    assert len(seen["request"]["uid"]) == 36


def test_unknown_airflow_ids_are_absent(start_opa, make_hook):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [{"op": "add", "path": "/metadata/annotations", "value": {"a": json.marshal(input.airflow)}}]}
    """, audit_annotation=False)
    bare = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="bare"), spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c")]))
    hook(bare)
    assert json.loads(bare.metadata.annotations["a"]) == {"launcher": "unknown"}


# -- decision members ----------------------------------------------------------------------------------


def test_empty_decision_leaves_pod_untouched(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, "decision := {}")
    before = pod.to_dict()
    hook(pod)
    assert pod.to_dict() == before


def test_every_rfc6902_op_applies(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [
            {"op": "test", "path": "/spec/restartPolicy", "value": "Never"},
            {"op": "add", "path": "/metadata/labels/team", "value": "data", "policy": "labels"},
            {"op": "replace", "path": "/spec/serviceAccountName", "value": "restricted"},
            {"op": "copy", "from": "/metadata/labels/team", "path": "/metadata/annotations/team"},
            {"op": "add", "path": "/metadata/labels/tmp", "value": "x"},
            {"op": "move", "from": "/metadata/labels/tmp", "path": "/metadata/annotations/moved"},
            {"op": "remove", "path": "/spec/containers/0/livenessProbe"},
        ]}
    """, audit_annotation=False)
    hook(pod)
    assert pod.metadata.labels["team"] == "data"
    assert "tmp" not in pod.metadata.labels
    assert pod.metadata.annotations["team"] == "data"
    assert pod.metadata.annotations["moved"] == "x"
    assert pod.spec.service_account_name == "restricted"
    assert pod.spec.containers[0].liveness_probe is None
    assert pod.spec.containers[0].image == "apache/airflow:3.3.2"  # untouched fields keep their values


def test_added_values_become_proper_models(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [
            {"op": "add", "path": "/spec/containers/-", "value": {
                "name": "proxy", "image": "envoy:1.30",
                "resources": {"limits": {"cpu": "250m", "memory": "128Mi"}},
                "ports": [{"containerPort": 9901, "name": "admin"}],
                "readinessProbe": {"tcpSocket": {"port": 9901}},
                "livenessProbe": {"httpGet": {"path": "/ready", "port": "admin"}},
                "env": [{"name": "LEVEL", "value": "info"}]}},
            {"op": "add", "path": "/spec/tolerations", "value": [{"key": "pool", "operator": "Equal", "value": "airflow", "effect": "NoSchedule"}]},
            {"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "OPA", "value": "1"}},
            {"op": "add", "path": "/spec/containers/0/securityContext", "value": {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}},
        ]}
    """)
    hook(pod)
    added = pod.spec.containers[1]
    assert isinstance(added, k8s.V1Container)
    assert isinstance(added.resources, k8s.V1ResourceRequirements)
    assert added.resources.limits == {"cpu": "250m", "memory": "128Mi"}
    assert isinstance(added.ports[0], k8s.V1ContainerPort)
    assert added.readiness_probe.tcp_socket.port == 9901  # int-or-string, as a number
    assert added.liveness_probe.http_get.port == "admin"  # int-or-string, as a name
    assert isinstance(added.env[0], k8s.V1EnvVar)
    assert isinstance(pod.spec.tolerations[0], k8s.V1Toleration)
    assert pod.spec.tolerations[0].effect == "NoSchedule"
    base = pod.spec.containers[0]
    assert isinstance(base.env[1], k8s.V1EnvVar)
    assert [e.name for e in base.env] == ["AIRFLOW_IS_K8S_EXECUTOR_POD", "OPA"]
    assert isinstance(base.security_context, k8s.V1SecurityContext)
    assert isinstance(base.security_context.capabilities, k8s.V1Capabilities)
    assert base.security_context.run_as_non_root is True
    assert base.resources.requests == {"cpu": "500m", "memory": "1Gi"}  # quantities untouched
    assert base.liveness_probe.http_get.port == "worker-logs"


def test_pod_object_identity_is_kept(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]}
    """)
    metadata_before = pod.metadata
    original = pod
    hook(pod)
    assert pod is original
    assert pod.metadata.labels["x"] == "y"
    assert metadata_before.labels.get("x") is None  # the old sub-objects were replaced, not edited


def test_warn_is_logged_and_pod_handled_normally(start_opa, make_hook, pod, hook_log):
    hook = serve(start_opa, make_hook, """
        decision := {
            "warn": ["plain warning", {"msg": "uses :latest", "policy": "image_tag"}],
            "patch": [{"op": "add", "path": "/metadata/labels/warned", "value": "yes"}],
        }
    """)
    hook(pod)
    assert pod.metadata.labels["warned"] == "yes"
    warnings = [r.getMessage() for r in hook_log.records if r.levelno == logging.WARNING]
    assert any("plain warning" in w for w in warnings)
    assert any("[image_tag] uses :latest" in w and "airflow/example-dag-task-1-abcdef" in w for w in warnings)


def test_deny_raises_and_leaves_pod_exactly_as_it_was(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {
            "deny": ["no privileged pods", {"msg": "hostPath /etc", "policy": "deny_host_path"}],
            "patch": [{"op": "add", "path": "/metadata/labels/x", "value": "y"}],
        }
    """, fail_mode="open")  # a deny is never bypassed by fail_mode
    before = pod.to_dict()
    with pytest.raises(PodDenied) as raised:
        hook(pod)
    assert pod.to_dict() == before
    message = str(raised.value)
    assert "no privileged pods" in message
    assert "[deny_host_path] hostPath /etc" in message
    assert "airflow/example-dag-task-1-abcdef" in message
    assert "dag_id=example_dag" in message and "task_id=extract" in message
    assert "airflow/pod/decision" in message
    assert [m.policy for m in raised.value.messages] == [None, "deny_host_path"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("decision := 1 if false", "undefined"),
        ('decision := "allow"', "must be an object"),
        ('decision := {"patch": {"op": "add"}}', "'patch' must be an array"),
        ('decision := {"patch": ["add"]}', "op #0 must be an object"),
        ('decision := {"patch": [{"op": "add", "path": "/x", "value": 1, "policy": 7}]}', "'policy' must be a string"),
        ('decision := {"deny": "nope"}', "'deny' must be an array"),
        ('decision := {"deny": [{"message": "x"}]}', "deny[0] must be a string or an object"),
        ('decision := {"warn": [42]}', "warn[0]"),
        ('decision := {"exemptions": {"name": "x"}}', "'exemptions' must be an array"),
        ('decision := {"exemptions": [{"policy": "p"}]}', "exemptions[0] must be an object with a string 'name'"),
        ('decision := {"exemptions": [{"name": "x", "expires": 20270131}]}', "exemptions[0]: 'expires' must be a string"),
    ],
)
def test_invalid_decisions(start_opa, make_hook, pod, body, needle):
    hook = serve(start_opa, make_hook, body)
    before = pod.to_dict()
    with pytest.raises(InvalidDecision) as raised:
        hook(pod)
    assert needle in str(raised.value)
    assert "airflow/example-dag-task-1-abcdef" in str(raised.value)
    assert pod.to_dict() == before


def test_wrong_decision_path_is_undefined(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, "decision := {}", decision_path="airflow/pod/nothing_here")
    with pytest.raises(InvalidDecision, match="undefined"):
        hook(pod)


# -- atomicity and patch rejection ---------------------------------------------------------------------


def test_third_op_failing_leaves_pod_identical(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [
            {"op": "add", "path": "/metadata/labels/one", "value": "1", "policy": "first"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "evil:latest", "policy": "second"},
            {"op": "remove", "path": "/spec/volumes/7", "policy": "third"},
        ]}
    """)
    before = pod.to_dict()
    with pytest.raises(PatchRejected) as raised:
        hook(pod)
    assert pod.to_dict() == before
    error = raised.value
    assert (error.op_index, error.path, error.policy) == (2, "/spec/volumes/7", "third")
    assert "op #2" in str(error) and "'third'" in str(error)


@pytest.mark.parametrize(
    ("ops", "index", "needle"),
    [
        ('[{"op": "test", "path": "/spec/restartPolicy", "value": "Always"}]', 0, "test op failed"),
        ('[{"op": "frobnicate", "path": "/spec"}]', 0, "unknown or missing 'op'"),
        ('[{"op": "add", "path": "/spec/containers/01/name", "value": "x"}]', 0, "does not apply"),
        ('[{"op": "add", "path": "/metadata/labels/a", "value": "b"}, {"op": "add", "path": "/spec/initContainers", "value": {"name": "c"}}]', 1, "not a valid V1Pod"),
        ('[{"op": "add", "path": "/spec/restartPolicyy", "value": "Always"}]', 0, "unknown to the kubernetes client"),
        ('[{"op": "add", "path": "/spec/hostNetwork", "value": "false"}]', 0, "hostNetwork"),
        ('[{"op": "add", "path": "/spec/containers/0/ports/0/containerPort", "value": "80"}]', 0, "containerPort"),
        ('[{"op": "add", "path": "/spec/priority", "value": true}]', 0, "priority"),  # a bool is no int (Python's is)
        # The models would rewrite this timestamp (to "...500000Z" or "...500000+00:00"): not the value sent.
        ('[{"op": "add", "path": "/metadata/creationTimestamp", "value": "2026-01-01T00:00:00.5+00:00"}]', 0, "creationTimestamp"),
        ('[{"op": "replace", "path": "", "value": []}]', 0, "no longer an object"),
    ],
)
def test_bad_patches_are_rejected_without_touching_the_pod(start_opa, make_hook, pod, ops, index, needle):
    hook = serve(start_opa, make_hook, f'decision := {{"patch": {ops}}}')
    before = pod.to_dict()
    with pytest.raises(PatchRejected) as raised:
        hook(pod)
    assert pod.to_dict() == before
    assert raised.value.op_index == index
    assert needle in str(raised.value)


def test_whole_pod_replacement_is_checked_like_any_patch(start_opa, make_hook, pod):
    replacement = k8s.ApiClient().sanitize_for_serialization(worker_pod())
    replacement["spec"]["priorityClassName"] = "high"
    hook = serve(start_opa, make_hook, f'decision := {{"patch": [{{"op": "replace", "path": "", "value": {json.dumps(replacement)}}}]}}')
    hook(pod)
    assert pod.spec.priority_class_name == "high"
    assert isinstance(pod.spec.containers[0], k8s.V1Container)


@pytest.mark.parametrize(
    ("op", "needle"),
    [
        ('{"op": "replace", "path": "/metadata/name", "value": "other"}', "metadata.name"),
        ('{"op": "remove", "path": "/metadata/namespace"}', "metadata.namespace"),
        ('{"op": "replace", "path": "/metadata/labels/dag_id", "value": "x"}', "'dag_id'"),
        ('{"op": "remove", "path": "/metadata/labels/try_number"}', "'try_number'"),
        ('{"op": "remove", "path": "/metadata/labels"}', "label"),
        ('{"op": "replace", "path": "/metadata/labels/kubernetes_executor", "value": "False"}', "kubernetes_executor"),
        ('{"op": "move", "from": "/metadata/labels/airflow-worker", "path": "/metadata/annotations/w"}', "airflow-worker"),
        ('{"op": "copy", "from": "/metadata/annotations/task_id", "path": "/metadata/labels/run_id"}', "'run_id'"),
        ('{"op": "replace", "path": "/spec/containers/0/name", "value": "main"}', "'base'"),
        ('{"op": "remove", "path": "/spec/containers/0"}', "'base'"),
        ('{"op": "replace", "path": "/metadata", "value": {"name": "example-dag-task-1-abcdef"}}', "namespace"),
    ],
)
def test_protected_fields(start_opa, make_hook, pod, op, needle):
    hook = serve(start_opa, make_hook, f'decision := {{"patch": [{op}]}}')
    before = pod.to_dict()
    with pytest.raises(PatchRejected, match="protected") as raised:
        hook(pod)
    assert needle in str(raised.value)
    assert pod.to_dict() == before


def test_protected_labels_can_be_extended_and_absent_ones_added(start_opa, make_hook, pod):
    pod.metadata.labels["team"] = "data"
    body = """decision := {"patch": [{"op": "replace", "path": "/metadata/labels/team", "value": "ml"}]}"""
    with pytest.raises(PatchRejected, match="'team' is protected"):
        serve(start_opa, make_hook, body, protected_labels=("team",))(pod)
    assert pod.metadata.labels["team"] == "data"
    # Protection covers what the input had: a label Airflow did not set may be added.
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [{"op": "add", "path": "/metadata/labels/map_index", "value": "3"}]}
    """)
    del pod.metadata.labels["map_index"]
    hook(pod)
    assert pod.metadata.labels["map_index"] == "3"


def test_max_patch_ops_bounds_the_patch(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [op | some i in numbers.range(1, 20); op := {"op": "add", "path": sprintf("/metadata/labels/l%d", [i]), "value": "v"}]}
    """, max_patch_ops=10)
    with pytest.raises(PatchRejected, match="20 ops exceed max_patch_ops = 10"):
        hook(pod)


# -- audit annotation ----------------------------------------------------------------------------------


def test_changed_pod_gets_audit_annotation_unchanged_pod_does_not(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [{"op": "add", "path": "/metadata/labels/team", "value": "data", "policy": "labels"}]} if {
            not input.pod.metadata.labels.team
        }
        decision := {"patch": [{"op": "test", "path": "/metadata/labels/team", "value": "data", "policy": "check"}]} if {
            input.pod.metadata.labels.team
        }
    """)
    hook(pod)
    record = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert record["policies"] == ["labels"]
    assert record["layer"] == "hook"  # the admission webhook writes "admission"
    assert len(record["request_uid"]) == 36
    other = worker_pod("already-labelled")
    other.metadata.labels["team"] = "data"
    hook(other)
    assert AUDIT_ANNOTATION not in other.metadata.annotations


def test_exemptions_that_applied_are_in_the_decision_and_the_audit_annotation(start_opa, make_hook, pod):
    # issue 26: a pod let through by an exemption says so, even when nothing else changed it
    hook = serve(start_opa, make_hook, """
        decision := {"exemptions": [
            {"name": "legacy", "reason": "migrating", "ticket": "SEC-1", "expires": "2027-01-31"},
            {"name": "ci", "policy": "image_tag"},
        ]}
    """)
    outcome = hook.evaluate(pod)
    assert [(e.policy, e.name, e.reason, e.ticket, e.expires) for e in outcome.decision.exemptions] == [
        (None, "legacy", "migrating", "SEC-1", "2027-01-31"),
        ("image_tag", "ci", None, None, None),
    ]
    assert not outcome.changed and outcome.annotated  # an annotation alone is no mutation (verdict, metrics)
    hook(pod)
    record = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert record["policies"] == []
    # compact: the configuration keys only; the owner's text stays in the decision and its log
    assert record["exemptions"] == ["exempt.legacy", "policies.image_tag.exempt.ci"]


def test_the_audit_annotation_stays_small_however_many_exemptions_applied(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"exemptions": [{"name": concat("", [format_int(i, 10), "-", concat("", [x | some _ in numbers.range(1, 500); x := "n"])])} |
            some i in numbers.range(1, 40)
        ]}
    """)
    hook(pod)
    record = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert len(pod.metadata.annotations[AUDIT_ANNOTATION]) < 2000
    assert len(record["exemptions"]) == 9
    assert record["exemptions"][-1] == "... and 32 more"
    assert all(len(entry) <= 120 for entry in record["exemptions"])


def test_no_exemption_no_annotation_member(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, """
        decision := {"patch": [{"op": "add", "path": "/metadata/labels/team", "value": "data", "policy": "labels"}]}
    """)
    hook(pod)
    assert "exemptions" not in json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])


# -- dry-run -------------------------------------------------------------------------------------------


def test_dry_run_changes_nothing_and_raises_nothing(start_opa, make_hook, pod, hook_log):
    opa = start_opa(decision_policy("""
        decision := {"patch": [{"op": "add", "path": "/metadata/labels/team", "value": "data"}]} if {
            input.request.mode == "dry-run"
            input.pod.metadata.name != "denied"
        }
        decision := {"deny": ["would deny"]} if input.pod.metadata.name == "denied"
    """))
    hook = make_hook(opa, mode="dry-run")
    before = pod.to_dict()
    hook(pod)
    assert pod.to_dict() == before
    text = hook_log.text
    assert "would change" in text and '+      "team": "data"' in text
    denied = worker_pod("denied")
    hook(denied)  # no raise
    assert "would deny" in hook_log.text
    make_hook("http://127.0.0.1:9", mode="dry-run", timeout=0.3)(pod)  # OPA down: logged, not raised
    assert pod.to_dict() == before
    assert "evaluation failed" in hook_log.text


# -- OPA failing -----------------------------------------------------------------------------------------


def test_opa_runtime_error_denies_the_pod_naming_the_rego_error(start_opa, make_hook, pod):
    """A 500 while OPA answers /health: the pod is blamed, in both fail modes (issue 13)."""
    for fail_mode in ("closed", "open"):
        hook = serve(start_opa, make_hook, """
            decision := {"patch": []} if input.pod.kind == "Pod"
            decision := {"deny": []} if input.pod.apiVersion == "v1"
        """, fail_mode=fail_mode)
        with pytest.raises(PodDenied, match="OPA is healthy but could not decide on this pod") as raised:
            hook(pod)
        assert "HTTP 500" in str(raised.value) and "eval_conflict_error" in str(raised.value)


def test_fail_closed_and_open_with_opa_stopped_mid_test(start_opa, make_hook, pod, hook_log):
    opa = start_opa(decision_policy("""
        decision := {"patch": [{"op": "add", "path": "/metadata/labels/seen", "value": "yes"}]}
    """))
    closed = make_hook(opa, timeout=0.5)
    opened = make_hook(opa, timeout=0.5, fail_mode="open")
    first = worker_pod("first")
    closed(first)
    assert first.metadata.labels["seen"] == "yes"
    opa.stop()
    before = pod.to_dict()
    with pytest.raises(OpaUnavailable, match="cannot connect to OPA"):
        closed(pod)
    assert pod.to_dict() == before
    opened(pod)
    assert pod.to_dict() == before
    assert "fail_mode=open" in hook_log.text
    opa.start()  # same port: the next call works without rebuilding anything
    closed(pod)
    assert pod.metadata.labels["seen"] == "yes"


def test_opa_slower_than_timeout(start_opa, make_hook, pod):
    """OPA answers /health while the policy is slow on this pod: denied in both fail modes (issue 13)."""
    hook = serve(start_opa, make_hook, """
        decision := {"patch": []} if {
            count([x | some x in numbers.range(1, 20000000); x % 7 == 0]) > 0
        }
    """, timeout=0.3)
    with pytest.raises(PodDenied, match=r"within timeout = 0.3s"):
        hook(pod)
    opened = serve(start_opa, make_hook, "decision := {\"deny\": [\"never seen\"]} if count(numbers.range(1, 20000000)) > 0",
                   timeout=0.3, fail_mode="open")
    before = pod.to_dict()
    with pytest.raises(PodDenied, match="OPA is healthy but could not decide on this pod"):
        opened(pod)
    assert pod.to_dict() == before


def test_fail_open_never_bypasses_a_config_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPA_MUTATION__FAIL_MODE", "open")
    monkeypatch.setenv("AIRFLOW__OPA_MUTATION__TIMEOUT", "soon")
    with pytest.raises(ConfigError, match=r"timeout = 'soon'"):
        aom.configure()


def test_circuit_breaker_fails_fast_then_probes(start_opa, make_hook, pod, monkeypatch):
    """The cooldown runs on the client's clock, moved by the test (no sleep, and however long OPA takes
    to start): open for all of it, then exactly one probe call goes through and closes the breaker."""
    clock = ClientProbe(monkeypatch)
    opa = start_opa(decision_policy('decision := {"patch": [{"op": "add", "path": "/metadata/labels/ok", "value": "1"}]}'))
    hook = make_hook(opa, timeout=0.3, breaker_threshold=2, breaker_cooldown=60.0)
    opa.stop()
    for _ in range(2):
        with pytest.raises(OpaUnavailable, match="cannot connect"):
            hook(pod)
    with pytest.raises(OpaUnavailable, match="circuit breaker open after 2 consecutive failures"):
        hook(pod)
    opa.start()
    clock.advance(30.0)
    with pytest.raises(OpaUnavailable, match="circuit breaker open"):
        hook(pod)  # half the cooldown later: still open, even though OPA is back
    assert len(clock.calls) == 2  # the calls the open breaker refused never went out
    clock.advance(30.0)
    hook(pod)  # the cooldown is over: the probe goes through and closes the breaker
    assert pod.metadata.labels["ok"] == "1"
    assert len(clock.calls) == 3


def test_provenance_is_requested_and_kept(start_opa, make_hook, pod):
    hook = serve(start_opa, make_hook, "decision := {}")
    outcome = hook.evaluate(pod)
    assert outcome.decision.provenance["version"].startswith("1.")  # OPA's own version, from ?provenance=true
    quiet = serve(start_opa, make_hook, "decision := {}", provenance=False)
    assert quiet.evaluate(pod).decision.provenance == {}


def test_require_bundles_refuses_an_opa_without_its_bundle(start_opa, make_hook, pod, tmp_path):
    config = tmp_path / "opa.yaml"
    config.write_text(
        "services:\n  nowhere:\n    url: http://127.0.0.1:9\n"
        "bundles:\n  policies:\n    service: nowhere\n    resource: bundle.tar.gz\n"
    )
    opa = start_opa(decision_policy("decision := {}"), args=["--config-file", str(config)])
    before = pod.to_dict()
    with pytest.raises(OpaUnavailable, match="has not activated its bundles yet"):
        make_hook(opa, require_bundles=True)(pod)
    assert pod.to_dict() == before
    make_hook(opa)(pod)  # without the requirement the locally loaded policy answers
    opa.stop()
    with pytest.raises(OpaUnavailable, match="cannot connect to OPA"):  # unreachable is not "no bundle"
        make_hook(opa, require_bundles=True, timeout=0.3)(pod)
