"""Hostile pods and hostile decisions through one real OPA: a valid typed pod, or a typed error.

One OPA serves ``decision := data.current``; each case PUTs its decision there, then runs its pod
through the hook. Every case ends with the invariant: either the hook succeeded and the pod is a
valid, correctly typed ``V1Pod`` (checked against the kubernetes client's own deserializer), or it
raised the expected ``OpaMutationError`` subclass and ``pod.to_dict()`` is exactly what it was.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client as k8s

from airflow_opa_mutation import (
    InvalidDecision,
    MutationHook,
    OpaMutationError,
    PatchRejected,
    Settings,
    _patch_engine,
    pod_to_json,
)
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import worker_pod
from .figures import record
from .invariants import assert_valid_typed_pod


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOpa]:
    folder: Path = tmp_path_factory.mktemp("hostile")
    (folder / "policy.rego").write_text("package airflow.pod\n\ndecision := data.current\n")
    server = LocalOpa([folder]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hook(opa: LocalOpa) -> Iterator[MutationHook]:
    # max_containers raised: these pods test the codec and patcher, not the limits (tests/test_tamper.py)
    made = MutationHook(
        Settings(url=opa.url, timeout=20, audit_annotation=False, breaker_threshold=1000, max_containers=1000)
    )
    yield made
    made.close()


def decide(opa: LocalOpa, decision: Any) -> None:
    body = decision if isinstance(decision, str) else json.dumps(decision)
    response = requests.put(f"{opa.url}/v1/data/current", data=body, timeout=30)
    assert response.status_code == 204, response.text


def run(hook: MutationHook, pod: Any) -> OpaMutationError | None:
    """The hook on ``pod``; returns the error (after checking the pod is untouched) or None."""
    before = pod.to_dict()
    doc_before = pod_to_json(pod)
    try:
        hook(pod)
    except OpaMutationError as exc:
        assert pod.to_dict() == before
        assert pod_to_json(pod) == doc_before
        return exc
    assert_valid_typed_pod(pod)
    return None


def patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"patch": list(ops)}


def bare_pod() -> k8s.V1Pod:
    return k8s.V1Pod(api_version="v1", kind="Pod", metadata=k8s.V1ObjectMeta(name="bare", namespace="ns"))


# -- hostile pods --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodCase:
    id: str
    make: Callable[[], k8s.V1Pod]
    decision: dict[str, Any]
    check: Callable[[k8s.V1Pod], None]


def _no_spec_added(pod: k8s.V1Pod) -> None:
    assert pod.metadata.labels == {"a": "b"}
    assert pod.spec is None


def _container_added(pod: k8s.V1Pod) -> None:
    assert [type(c) for c in pod.spec.containers] == [k8s.V1Container]
    assert pod.spec.containers[0].ports[0].container_port == 80


def _many(pod: k8s.V1Pod) -> None:
    assert len(pod.spec.containers) == 501
    assert all(type(c) is k8s.V1Container for c in pod.spec.containers)
    assert pod.spec.containers[-1].name == "added"
    assert pod.spec.containers[250].env[0].value == "two-fifty"


def _unicode(pod: k8s.V1Pod) -> None:
    assert pod.metadata.labels["long"] == "v" * 63
    assert pod.metadata.labels["emoji"] == "🚀 ünïcödé 日本語"
    assert pod.metadata.annotations["rtl"] == "\u202eevil\u202c"


def _big_annotations(pod: k8s.V1Pod) -> None:
    assert len(pod.metadata.annotations["blob"]) == 256 * 1024
    assert pod.metadata.labels["seen"] == "yes"


def _int_or_string(pod: k8s.V1Pod) -> None:
    base = pod.spec.containers[0]
    assert base.liveness_probe.http_get.port == 8080 and type(base.liveness_probe.http_get.port) is int
    assert base.readiness_probe.tcp_socket.port == "worker-logs"
    assert base.resources.limits == {"cpu": "1500m", "memory": "2Gi", "ephemeral-storage": "1e9"}


def _pod_with_unicode() -> k8s.V1Pod:
    pod = worker_pod("unicode")
    pod.metadata.labels["long"] = "v" * 63
    pod.metadata.annotations["rtl"] = "\u202eevil\u202c"
    return pod


def _pod_with_blob() -> k8s.V1Pod:
    pod = worker_pod("blob")
    pod.metadata.annotations["blob"] = "x" * (256 * 1024)
    return pod


def _pod_with_500() -> k8s.V1Pod:
    pod = worker_pod("five-hundred", containers=500)
    pod.spec.containers[250].env = [k8s.V1EnvVar(name="N", value="two-fifty")]
    return pod


POD_CASES = [
    PodCase("no-spec", bare_pod, patch({"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}), _no_spec_added),
    PodCase(
        "empty-containers",
        lambda: k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="empty"), spec=k8s.V1PodSpec(containers=[])),
        patch({"op": "add", "path": "/spec/containers/-",
               "value": {"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}}),
        _container_added,
    ),
    PodCase("500-containers", _pod_with_500,
            patch({"op": "add", "path": "/spec/containers/-", "value": {"name": "added", "image": "busybox"}}), _many),
    PodCase("unicode-and-63-char-labels", _pod_with_unicode,
            patch({"op": "add", "path": "/metadata/labels/emoji", "value": "🚀 ünïcödé 日本語"}), _unicode),
    PodCase("256KB-of-annotations", _pod_with_blob,
            patch({"op": "add", "path": "/metadata/labels/seen", "value": "yes"}), _big_annotations),
    PodCase(
        "int-or-string-and-quantities",
        worker_pod,
        patch(
            {"op": "replace", "path": "/spec/containers/0/livenessProbe/httpGet/port", "value": 8080},
            {"op": "add", "path": "/spec/containers/0/readinessProbe", "value": {"tcpSocket": {"port": "worker-logs"}}},
            {"op": "add", "path": "/spec/containers/0/resources/limits",
             "value": {"cpu": "1500m", "memory": "2Gi", "ephemeral-storage": "1e9"}},
        ),
        _int_or_string,
    ),
]


@pytest.mark.parametrize("case", POD_CASES, ids=[c.id for c in POD_CASES])
def test_hostile_pods(opa, hook, case):
    decide(opa, case.decision)
    pod = case.make()
    started = time.monotonic()
    error = run(hook, pod)
    elapsed = time.monotonic() - started
    assert error is None, error
    case.check(pod)
    record("hostile pod", case.id, elapsed)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (2, "limits/cpu"),  # a quantity is a string in the client's model, never a bare number
        (None, "null is not a value Kubernetes keeps"),
        ({"nested": "1"}, "limits/cpu"),
    ],
    ids=["number", "null", "object"],
)
def test_quantity_of_the_wrong_type_is_rejected(opa, hook, value, needle):
    decide(opa, patch({"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"cpu": value}}))
    error = run(hook, worker_pod())
    assert isinstance(error, PatchRejected), error
    assert needle in str(error)


# -- hostile decisions ---------------------------------------------------------------------------------

OK = None
ESCAPED = {"a/b~c": "v", "plain": "p"}


def _escaped_pod() -> k8s.V1Pod:
    pod = worker_pod()
    pod.metadata.annotations.update(ESCAPED)
    return pod


def _whole(**changes: Any) -> dict[str, Any]:
    doc = pod_to_json(worker_pod())
    doc["spec"].update(changes)
    return doc


def _renamed() -> dict[str, Any]:
    doc = pod_to_json(worker_pod())
    doc["metadata"]["name"] = "someone-else"
    return doc


# (id, pod factory, ops, expected error type or OK, a substring of the error or a check of the pod)
DECISIONS: list[tuple[str, Callable[[], k8s.V1Pod], Any, type[OpaMutationError] | None, Any]] = [
    ("all-six-ops", worker_pod, [
        {"op": "test", "path": "/spec/restartPolicy", "value": "Never"},
        {"op": "add", "path": "/metadata/labels/team", "value": "data"},
        {"op": "replace", "path": "/spec/serviceAccountName", "value": "restricted"},
        {"op": "copy", "from": "/metadata/labels/team", "path": "/metadata/annotations/team"},
        {"op": "move", "from": "/metadata/annotations/team", "path": "/metadata/labels/owner"},
        {"op": "remove", "path": "/spec/containers/0/livenessProbe"},
    ], OK, lambda p: p.metadata.labels["owner"] == "data" and p.spec.containers[0].liveness_probe is None),
    ("tilde-escapes", _escaped_pod, [
        {"op": "replace", "path": "/metadata/annotations/a~1b~0c", "value": "changed"},
        {"op": "test", "path": "/metadata/annotations/a~1b~0c", "value": "changed"},
    ], OK, lambda p: p.metadata.annotations["a/b~c"] == "changed"),
    ("tilde-unescaped-is-another-key", _escaped_pod, [
        {"op": "replace", "path": "/metadata/annotations/a~1b~c", "value": "x"}], PatchRejected, "does not apply"),
    ("dash-appends", worker_pod, [
        {"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "N", "value": "v"}}],
     OK, lambda p: [e.name for e in p.spec.containers[0].env][-1] == "N"),
    ("dash-cannot-be-removed", worker_pod, [
        {"op": "remove", "path": "/spec/containers/0/env/-"}], PatchRejected, "op #0"),
    ("dash-cannot-be-replaced", worker_pod, [
        {"op": "replace", "path": "/spec/containers/0/env/-", "value": {"name": "N"}}], PatchRejected, "op #0"),
    ("leading-zero-index", worker_pod, [
        {"op": "replace", "path": "/spec/containers/00/image", "value": "x"}], PatchRejected, "op #0"),
    ("negative-index", worker_pod, [
        {"op": "add", "path": "/spec/containers/-1", "value": {"name": "x"}}], PatchRejected, "op #0"),
    ("index-out-of-range", worker_pod, [
        {"op": "add", "path": "/spec/containers/0/env/5", "value": {"name": "x"}}], PatchRejected, "op #0"),
    ("index-equal-to-length-appends", worker_pod, [
        {"op": "add", "path": "/spec/containers/0/env/1", "value": {"name": "x", "value": "y"}}],
     OK, lambda p: p.spec.containers[0].env[1].name == "x"),
    ("remove-out-of-range", worker_pod, [{"op": "remove", "path": "/spec/containers/9"}], PatchRejected, "op #0"),
    ("huge-index", worker_pod, [
        {"op": "add", "path": "/spec/containers/99999999999999999999", "value": {"name": "x"}}], PatchRejected, "op #0"),
    ("index-into-object", worker_pod, [
        {"op": "add", "path": "/metadata/0", "value": "x"}], PatchRejected, "op #0"),
    ("path-without-slash", worker_pod, [
        {"op": "add", "path": "metadata/labels/x", "value": "y"}], PatchRejected, "op #0"),
    ("path-not-a-string", worker_pod, [{"op": "add", "path": 7, "value": "y"}], (PatchRejected, InvalidDecision), ""),
    ("missing-value", worker_pod, [{"op": "add", "path": "/metadata/labels/x"}], PatchRejected, "value"),
    ("missing-from", worker_pod, [{"op": "move", "path": "/metadata/labels/x"}], PatchRejected, "from"),
    ("null-value", worker_pod, [{"op": "add", "path": "/metadata/labels/x", "value": None}], PatchRejected, "null is not a value"),
    ("empty-path-test-whole-doc", worker_pod, [
        {"op": "test", "path": "", "value": pod_to_json(worker_pod())}], OK, lambda p: p.to_dict() == worker_pod().to_dict()),
    ("empty-path-test-fails", worker_pod, [{"op": "test", "path": "", "value": {}}], PatchRejected, "test op failed"),
    ("empty-path-replace-whole-pod", worker_pod, [
        {"op": "replace", "path": "", "value": _whole(priorityClassName="high")}], OK, lambda p: p.spec.priority_class_name == "high"),
    ("empty-path-add-whole-pod", worker_pod, [
        {"op": "add", "path": "", "value": _whole(hostname="h")}], OK, lambda p: p.spec.hostname == "h"),
    ("empty-path-replace-renames", worker_pod, [
        {"op": "replace", "path": "", "value": _renamed()}], PatchRejected, "metadata.name is protected"),
    ("empty-path-remove", worker_pod, [{"op": "remove", "path": ""}], PatchRejected, "op #0"),
    ("empty-path-scalar", worker_pod, [{"op": "replace", "path": "", "value": "pod"}], PatchRejected, "op #0"),
    ("failing-test-after-good-ops", worker_pod, [
        {"op": "add", "path": "/metadata/labels/x", "value": "y"},
        {"op": "test", "path": "/metadata/labels/x", "value": "z"}], PatchRejected, "op #1"),
    ("test-type-strict", worker_pod, [
        {"op": "test", "path": "/metadata/labels/try_number", "value": 1}], PatchRejected, "test op failed"),
    ("move-onto-name", worker_pod, [
        {"op": "add", "path": "/metadata/labels/x", "value": "n"},
        {"op": "move", "from": "/metadata/labels/x", "path": "/metadata/name"}], PatchRejected, "metadata.name"),
    ("copy-onto-dag-id", worker_pod, [
        {"op": "copy", "from": "/metadata/labels/task_id", "path": "/metadata/labels/dag_id"}], PatchRejected, "dag_id"),
    ("move-base-to-init", worker_pod, [
        {"op": "move", "from": "/spec/containers/0", "path": "/spec/initContainers"}], PatchRejected, "'base'"),
    ("move-labels-away", worker_pod, [
        {"op": "move", "from": "/metadata/labels", "path": "/metadata/annotations"}], PatchRejected, "protected"),
    ("move-metadata-to-root", worker_pod, [{"op": "move", "from": "/metadata", "path": ""}], PatchRejected, "op #0"),
    ("copy-spec-over-metadata", worker_pod, [
        {"op": "copy", "from": "/spec", "path": "/metadata"}], PatchRejected, "protected"),
    ("move-into-own-child", worker_pod, [
        {"op": "move", "from": "/spec", "path": "/spec/containers/0/x"}], PatchRejected, "op #0"),
    ("reorder-keeps-base", worker_pod, [
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "side", "image": "busybox"}},
        {"op": "move", "from": "/spec/containers/0", "path": "/spec/containers/-"}],
     OK, lambda p: [c.name for c in p.spec.containers] == ["side", "base"]),
    ("copy-object-into-string-map", worker_pod, [
        {"op": "copy", "from": "/spec/containers/0", "path": "/metadata/annotations/c"}], PatchRejected, "annotations"),
    ("unknown-op", worker_pod, [{"op": "merge", "path": "/spec", "value": {}}], PatchRejected, "unknown or missing"),
    ("op-not-a-string", worker_pod, [{"op": ["add"], "path": "/spec", "value": {}}], (PatchRejected, InvalidDecision), ""),
    ("nested-65-levels", worker_pod, [
        {"op": "add", "path": "/metadata/annotations/x", "value": "leaf"},
        {"op": "add", "path": "/spec/affinity", "value": json.loads('{"a":' * 65 + "1" + "}" * 65)}],
     PatchRejected, "nested deeper"),
    # Raw JSON: deeper than Python's own recursion limit, so never built as Python objects here.
    ("nested-1000-levels", worker_pod,
     '[{"op": "add", "path": "/spec/affinity", "value": ' + "[" * 1000 + "]" * 1000 + "}]", PatchRejected, "nested deeper"),
    ("nested-5000-levels", worker_pod,
     '[{"op": "add", "path": "/spec/affinity", "value": ' + "[" * 5000 + "]" * 5000 + "}]", OpaMutationError, ""),
]


@pytest.mark.parametrize(("case_id", "make", "ops", "expected", "check"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_hostile_decisions(opa, hook, case_id, make, ops, expected, check):
    decide(opa, f'{{"patch": {ops}}}' if isinstance(ops, str) else patch(*copy.deepcopy(ops)))
    pod = make()
    error = run(hook, pod)
    if expected is None:
        assert error is None, error
        assert check(pod), pod.to_dict()
    else:
        assert isinstance(error, expected), f"{case_id}: {error!r}"
        assert type(error) is not OpaMutationError  # always one of the typed subclasses
        assert check in str(error)


def test_100k_ops_are_rejected_quickly_by_max_patch_ops(opa, hook, monkeypatch):
    """Refused from the count, before a single op is applied: what "quickly" stands for."""
    ops = [{"op": "add", "path": f"/metadata/labels/l{i}", "value": "v"} for i in range(100_000)]
    decide(opa, patch(*ops))
    applied: list[Any] = []
    apply = _patch_engine._CopyOnWrite.apply
    monkeypatch.setattr(_patch_engine._CopyOnWrite, "apply", lambda state, op: applied.append(op) or apply(state, op))
    pod = worker_pod()
    started = time.monotonic()
    error = run(hook, pod)
    elapsed = time.monotonic() - started
    assert isinstance(error, PatchRejected) and "100000 ops exceed max_patch_ops = 1000" in str(error)
    assert applied == []
    record("100,000 ops", "round trip + rejection by max_patch_ops", elapsed)


def test_1000_ops_within_the_limit_apply(opa, hook):
    ops = [{"op": "add", "path": f"/metadata/annotations/a{i}", "value": str(i)} for i in range(1000)]
    decide(opa, patch(*ops))
    pod = worker_pod()
    started = time.monotonic()
    assert run(hook, pod) is None
    elapsed = time.monotonic() - started
    assert pod.metadata.annotations["a999"] == "999"
    record("1,000 ops (= max_patch_ops)", "applied", elapsed)


def _surrogate_env(pod: k8s.V1Pod) -> None:
    # What os.environ / os.fsdecode make of undecodable bytes (surrogateescape): not encodable as JSON.
    pod.spec.containers[0].env.append(k8s.V1EnvVar(name="RAW", value=b"caf\xe9".decode("utf-8", "surrogateescape")))


def _huge_int(pod: k8s.V1Pod) -> None:
    pod.spec.active_deadline_seconds = 2**70


def _bytes_annotation(pod: k8s.V1Pod) -> None:
    pod.metadata.annotations["raw"] = b"\xff\xfe"


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
@pytest.mark.parametrize("spoil", [_surrogate_env, _huge_int, _bytes_annotation],
                         ids=["lone-surrogate", "int-beyond-64-bits", "bytes-value"])
def test_pods_that_are_not_json_are_typed_errors(opa, hook, spoil, fail_mode, caplog):
    """Such pods used to raise a bare TypeError out of the JSON encoder, past fail_mode=open. A pod the
    hook cannot serialize is the pod's fault: PatchRejected in both fail modes (issue 13)."""
    decide(opa, patch({"op": "add", "path": "/metadata/labels/x", "value": "y"}))
    pod = worker_pod()
    spoil(pod)
    before = pod.to_dict()
    target = MutationHook(Settings(url=opa.url, fail_mode=fail_mode))
    try:
        with pytest.raises(PatchRejected, match="the pod cannot be serialized"):
            target(pod)
    finally:
        target.close()
    assert pod.to_dict() == before
