"""The patch engine's copy-on-write application against plain ``jsonpatch`` on a deep copy.

The engine shares every container no op writes in with the input document, so the one thing that must
never happen is a write into the input: each example snapshots the input and compares it afterwards, on
success and on failure alike. The result must be exactly what ``jsonpatch.apply_patch`` computes, and the
engine must refuse exactly the patches jsonpatch cannot apply. No OPA here: this is the engine alone
(the hook's path with a real OPA is tests/reliability/test_fuzz.py). Examples are the same in every run
(tests/replay.py), with explicit ones for the edges a draw may miss.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from airflow_opa_mutation import PatchRejected, _audit, _json, _patch_engine, _pod_codec
from airflow_opa_mutation._pod_codec import pod_to_json
from airflow_opa_mutation.decision import Decision, PatchOp

from .conftest import worker_pod
from .reliability.invariants import client_reads_exactly, reference_pod, same_types
from .reliability.test_fuzz import pod_and_ops, pointers
from .replay import replayable

scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b", "", "~", "/"]))
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcxy"), inner, max_size=3),
    max_leaves=6,
)
documents = st.dictionaries(
    st.sampled_from(["metadata", "spec", "a", "b"]),
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, min_size=1, max_size=4) | st.dictionaries(st.sampled_from("abcxy"), inner, max_size=3),
        max_leaves=12,
    ),
    max_size=4,
)


@st.composite
def doc_and_ops(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = draw(documents)
    targets = pointers(doc)
    places = st.sampled_from(targets) | st.sampled_from(targets).map(lambda p: p + "/-") | st.just("/a/x")
    op = st.one_of(
        st.builds(lambda p, v: {"op": "add", "path": p, "value": v}, places, values),
        st.builds(lambda p, v: {"op": "replace", "path": p, "value": v}, places, values),
        st.builds(lambda p: {"op": "remove", "path": p}, places),
        st.builds(lambda f, p: {"op": "move", "from": f, "path": p}, places, places),
        st.builds(lambda f, p: {"op": "copy", "from": f, "path": p}, places, places),
        st.builds(lambda p, v: {"op": "test", "path": p, "value": v}, places, values),
    )
    return doc, draw(st.lists(op, min_size=1, max_size=6))


def _ops(raw: list[dict[str, Any]]) -> tuple[PatchOp, ...]:
    return tuple(PatchOp(index=i, op=copy.deepcopy(op), policy="p") for i, op in enumerate(raw))


def _expected(doc: dict[str, Any], raw: list[dict[str, Any]]) -> Any:
    try:
        return jsonpatch.apply_patch(copy.deepcopy(doc), copy.deepcopy(raw))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError, IndexError):
        return PatchRejected


@replayable(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc_and_ops())
@example(({"metadata": {"labels": {"a": "1"}}}, [{"op": "add", "path": "/metadata/labels/b", "value": ""}]))
@example(({"spec": {"a": [""]}}, [{"op": "replace", "path": "/spec/a/0", "value": ""}, {"op": "test", "path": "/spec/a", "value": [""]}]))
@example(({"a": {"x": 1}}, [{"op": "copy", "from": "/a", "path": "/b"}, {"op": "add", "path": "/b/y", "value": {"c": ""}}]))
def test_copy_on_write_equals_jsonpatch_and_never_writes_into_the_input(case: tuple[dict[str, Any], list[Any]]) -> None:
    doc, raw = case
    snapshot = _json.canonical(doc)
    ops = _ops(raw)
    want = _expected(doc, raw)
    try:
        got, roots = _patch_engine.patch(doc, ops, protected_labels=[], max_ops=100)
    except PatchRejected:
        assert want is PatchRejected or not isinstance(want, dict)
    else:
        assert want is not PatchRejected
        assert _json.canonical(got) == _json.canonical(want)
        assert got is not doc
        # The audit annotation is written into the result, never into the input it shares parts with.
        _audit.annotate(got, Decision(patch=ops), "uid")
        assert _patch_engine.differs(doc, got, [*roots, _audit.ANNOTATIONS_ROOT])
    assert _json.canonical(doc) == snapshot
    assert [op.op for op in ops] == raw  # the decision's values are never written into either


def test_move_within_a_list_resolves_its_target_after_the_removal() -> None:
    """``move`` removes first: the target's index then names the next sibling, which must be a copy."""
    doc = {"spec": {"c": [{"n": 0}, {"n": 1}, {"n": 2}]}}
    raw = [{"op": "move", "from": "/spec/c/0", "path": "/spec/c/1/moved"}]
    snapshot = copy.deepcopy(doc)
    got, _ = _patch_engine.patch(doc, _ops(raw), protected_labels=[], max_ops=10)
    assert got == {"spec": {"c": [{"n": 1}, {"n": 2, "moved": {"n": 0}}]}}
    assert doc == snapshot


def test_later_ops_write_into_a_value_an_earlier_op_added_without_changing_the_decision() -> None:
    doc: dict[str, Any] = {"spec": {}}
    raw = [
        {"op": "add", "path": "/spec/securityContext", "value": {}},
        {"op": "add", "path": "/spec/securityContext/runAsNonRoot", "value": True},
    ]
    ops = _ops(raw)
    got, roots = _patch_engine.patch(doc, ops, protected_labels=[], max_ops=10)
    assert got == {"spec": {"securityContext": {"runAsNonRoot": True}}}
    assert doc == {"spec": {}} and ops[0].op["value"] == {}
    assert roots == ["/spec/securityContext"]


def test_a_failing_op_leaves_the_input_untouched_after_earlier_ops_ran() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"c": [{"n": 0}]}}
    snapshot = copy.deepcopy(doc)
    raw = [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "add", "path": "/spec/c/0/x", "value": 1},
        {"op": "remove", "path": "/spec/c/5"},
    ]
    with pytest.raises(PatchRejected) as caught:
        _patch_engine.patch(doc, _ops(raw), protected_labels=[], max_ops=10)
    assert caught.value.op_index == 2
    assert doc == snapshot


def test_a_patch_of_test_ops_only_still_returns_a_document_of_its_own() -> None:
    doc = {"metadata": {"name": "p"}}
    got, _ = _patch_engine.patch(doc, _ops([{"op": "test", "path": "/metadata/name", "value": "p"}]),
                                 protected_labels=[], max_ops=10)
    assert got == doc and got is not doc


def _to_pod(after: dict[str, Any], ops: tuple[PatchOp, ...], roots: list[str], **base: Any) -> Any:
    """The pod ``to_pod`` builds, or the reason it refuses the document."""
    try:
        return _patch_engine.to_pod(after, ops, roots, **base)
    except PatchRejected as exc:
        return exc.reason


@replayable(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod_and_ops())
@example((worker_pod(), [{"op": "add", "path": "/spec/containers/0/livenessProbe/periodSeconds", "value": "10"}]))
@example((worker_pod(), [{"op": "add", "path": "/spec/containers/0/tty", "value": 1}]))
# Both generations of models read these as datetimes that serialize differently ("2024-01-01T00:00:00").
@example((worker_pod(), [{"op": "add", "path": "/metadata/creationTimestamp", "value": "2024-01-01"}]))
@example((worker_pod(), [{"op": "add", "path": "/metadata/creationTimestamp", "value": 0}]))
@example((worker_pod(), [{"op": "add", "path": "/spec/containers/0/env/0/value", "value": ""}]))
def test_rebuilding_from_the_original_pod_equals_decoding_the_whole_document(case: tuple[Any, list[Any]]) -> None:
    """``to_pod`` accepts a patched document exactly when the kubernetes client's own deserializer reads it
    back unchanged (``client_reads_exactly``: the client, not the hook's codec), and then builds a pod
    that encodes to exactly the document, typed as the client's own reading. With ``base`` (classic
    models: the original pod's models reused where the document is shared) it accepts, refuses and
    builds exactly what it does without, and leaves the original pod as it was. Kubernetes 37 ignores
    ``base`` (pydantic validates the whole pod at once): there only the comparison with the client tests
    something."""
    pod, raw = copy.deepcopy(case)
    doc = pod_to_json(pod)
    snapshot = _json.canonical(doc)
    ops = _ops([{k: v for k, v in op.items() if k != "policy"} for op in raw])
    try:
        after, roots = _patch_engine.patch(doc, ops, protected_labels=[], max_ops=100)
    except PatchRejected:
        return
    whole = _to_pod(after, ops, roots)
    rebuilt = _to_pod(after, ops, roots, base=(doc, pod))
    if client_reads_exactly(after):
        for built in (whole, rebuilt):
            assert not isinstance(built, str), f"refused what the kubernetes client reads exactly: {built}"
            assert pod_to_json(built) == after
            same_types(built, reference_pod(after))
    else:
        assert isinstance(whole, str), f"accepted what the kubernetes client does not read back: {raw}"
        assert rebuilt == whole
    assert _json.canonical(pod_to_json(pod)) == snapshot == _json.canonical(doc)


def test_a_rebuilt_classic_pod_shares_only_what_the_patch_left_alone() -> None:
    from kubernetes import client as k8s

    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p", labels={"a": "1"}),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="i"), k8s.V1Container(name="s", image="j")]),
    )
    doc = pod_to_json(pod)
    raw = [{"op": "add", "path": "/spec/containers/1/securityContext", "value": {"runAsNonRoot": True}}]
    after, roots = _patch_engine.patch(doc, _ops(raw), protected_labels=[], max_ops=10)
    new = _patch_engine.to_pod(after, _ops(raw), roots, base=(doc, pod))
    assert pod_to_json(new) == after
    assert pod.spec.containers[1].security_context is None
    if not _pod_codec.PYDANTIC_MODELS:
        assert new.metadata is pod.metadata and new.spec.containers[0] is pod.spec.containers[0]
        assert new.spec is not pod.spec and new.spec.containers[1] is not pod.spec.containers[1]
    bad = [{"op": "add", "path": "/spec/containers/1/securityContext", "value": {"runAsNonRoot": "yes"}}]
    after, roots = _patch_engine.patch(doc, _ops(bad), protected_labels=[], max_ops=10)
    with pytest.raises(PatchRejected, match="runAsNonRoot") as caught:
        _patch_engine.to_pod(after, _ops(bad), roots, base=(doc, pod))
    assert caught.value.op_index == 0
