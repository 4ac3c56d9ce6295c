"""Random pods x random RFC 6902 patches through the hook and one real OPA, one round trip per example.

The policy returns the patch the test put in the pod's ``fuzz/patch`` annotation, so every example is
one real request to OPA with its real answer. Two-sided: an oracle independent of the hook says, per
example, whether the patch must be applied (and to what) or rejected (and for which of the documented
reasons, README "Failure handling": more than ``max_patch_ops`` ops, a value holding ``null`` or nested
too deep, an op RFC 6902 refuses, a protected field, a result that is not an object or not a valid
``V1Pod``). The oracle applies the ops one by one with ``jsonpatch``, checks the protected fields on the
result, and asks the kubernetes client's own deserializer whether it reads the result back exactly.

- the oracle applies the patch: the hook must succeed, and the pod must be a valid, correctly typed
  ``V1Pod`` whose JSON is exactly the oracle's result;
- the oracle rejects it: the hook must raise ``PatchRejected`` for that same reason, the pod unchanged.

A hook that refuses what it should apply fails the first case, even with a documented-sounding message.
The run must apply at least ``MIN_APPLIED`` of its examples and see every rejection reason. Examples are
the same in every run (tests/replay.py); the explicit ``@example`` cases pin the edges a random draw
may miss (an empty string value, each rejection reason).
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from airflow_opa_mutation import MutationHook, OpaMutationError, PatchRejected, Settings, pod_to_json
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import worker_pod
from ..replay import describe, replayable
from ..test_concurrency_and_roundtrip import pods
from .figures import record
from .invariants import assert_valid_typed_pod, client_reads_exactly

FUZZ_ANNOTATION = "fuzz/patch"
EXAMPLES = int(os.environ.get("AOM_FUZZ_EXAMPLES", "200"))
#: Small, so that generated patches reach the limit now and then (they have 1 to 4 ops).
MAX_OPS = 3
#: The share of examples the hook must apply: a hook that refuses everything cannot pass.
MIN_APPLIED = 0.3
BASE = "base"


@pytest.fixture(scope="module")
def fuzz_hook(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[MutationHook]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    (folder / "policy.rego").write_text(
        "package airflow.pod\n\n"
        f'decision := {{"patch": json.unmarshal(input.pod.metadata.annotations["{FUZZ_ANNOTATION}"])}}\n'
    )
    server = LocalOpa([folder]).start()
    hook = MutationHook(Settings(url=server.url, timeout=10, audit_annotation=False, breaker_threshold=10**6,
                                 max_patch_ops=MAX_OPS))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nfuzz: {describe()}", flush=True)  # past the capture: the way to replay a failure
    yield hook
    hook.close()
    server.stop()


# -- the oracle ---------------------------------------------------------------------------------------

#: The documented rejections (README, "Failure handling"), each with the words the hook's message uses.
REASONS = {
    "max_patch_ops": ("ops exceed max_patch_ops",),
    "null": ("null is not a value Kubernetes keeps",),
    "too deep": ("value nested deeper than",),
    "RFC 6902 refuses the op": ("op does not apply", "test op failed", "op is missing member", "unknown or missing 'op'"),
    "protected field": ("is protected (Airflow",),
    "not an object": ("the pod document is no longer an object", "the patched pod is not a JSON object"),
    "not a valid V1Pod": ("the patched pod is not a valid V1Pod",),
}


def reason_of(error: PatchRejected) -> str:
    """The documented rejection a ``PatchRejected`` names; fails the test for any other message."""
    found = [reason for reason, words in REASONS.items() if any(w in error.reason for w in words)]
    assert len(found) == 1, f"not one documented rejection: {error.reason!r}"
    return found[0]


@dataclass(frozen=True)
class Expected:
    reason: str | None  # None: the patch applies
    result: Any = None


def _problem(value: Any, depth: int = 1) -> str | None:
    if depth > 64:
        return "too deep"
    if value is None:
        return "null"
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        found = _problem(child, depth + 1)
        if found:
            return found
    return None


def _protected(before: dict[str, Any], after: Any, labels: tuple[str, ...]) -> bool:
    """Whether ``after`` changed what Airflow tracks its pods by, where ``before`` had it."""
    meta = before["metadata"]
    new_meta = after.get("metadata") if isinstance(after.get("metadata"), dict) else {}
    new_labels = new_meta.get("labels") if isinstance(new_meta.get("labels"), dict) else {}
    for field in ("name", "namespace"):
        if field in meta and new_meta.get(field) != meta[field]:
            return True
    if any(key in meta.get("labels", {}) and new_labels.get(key) != meta["labels"][key] for key in labels):
        return True
    spec = after.get("spec") if isinstance(after.get("spec"), dict) else {}
    containers = spec.get("containers") if isinstance(spec.get("containers"), list) else []
    had_base = any(c["name"] == BASE for c in before["spec"]["containers"])
    return had_base and not any(isinstance(c, dict) and c.get("name") == BASE for c in containers)


def expected(doc: dict[str, Any], ops: list[dict[str, Any]], protected_labels: tuple[str, ...]) -> Expected:
    """What the contract says the hook does with ``ops`` on ``doc``, computed without the hook."""
    if len(ops) > MAX_OPS:
        return Expected("max_patch_ops")
    result: Any = json.loads(json.dumps(doc))
    for op in ops:
        plain = {k: v for k, v in op.items() if k != "policy"}
        if "value" in plain and plain["op"] != "test":
            problem = _problem(plain["value"])
            if problem:
                return Expected(problem)
        try:
            result = jsonpatch.JsonPatch([plain]).apply(result)
        except Exception:
            return Expected("RFC 6902 refuses the op")
    if not isinstance(result, dict):
        return Expected("not an object")
    if _protected(doc, result, protected_labels):
        return Expected("protected field")
    if not client_reads_exactly(result):
        return Expected("not a valid V1Pod")
    return Expected(None, result)


# -- the examples ---------------------------------------------------------------------------------------


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pointers(doc: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """Every JSON pointer into ``doc`` (to a bounded depth), the document itself included."""
    found = [prefix]
    if depth > 6:
        return found
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += pointers(value, f"{prefix}/{_escape(key)}", depth + 1)
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += pointers(value, f"{prefix}/{index}", depth + 1)
    return found


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**31), 2**31), st.text(max_size=12),
    st.sampled_from(["Always", "IfNotPresent", "500m", "1Gi", "8080", "worker-logs", "", "~", "/"]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
realistic = st.sampled_from([
    {"name": "side", "image": "busybox:1.36"},
    {"name": "side", "image": "busybox", "ports": [{"containerPort": 80}]},
    {"name": "E", "value": "v"},
    {"name": "E", "value": ""},
    [{"name": "E", "value": "v"}],
    {"cpu": "250m", "memory": "64Mi"},
    {"limits": {"cpu": "1"}},
    {"runAsNonRoot": True, "runAsUser": 1000},
    [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
    {"httpGet": {"path": "/", "port": "http"}},
    {"tcpSocket": {"port": 8080}},
    "v", "", 1, True,
])
junk_paths = st.sampled_from([
    "/metadata/name", "/metadata/namespace", "/metadata/labels/dag_id", "/metadata/labels/new",
    "/metadata/annotations/new", "/spec/containers/-", "/spec/containers/0", "/spec/containers/00",
    "/spec/containers/99", "/spec/initContainers", "/spec/initContainers/-", "/spec/tolerations",
    "/spec/nodeSelector/zone", "/spec/hostNetwork", "/spec/unknownField", "/metadata/labels",
    "/spec", "/metadata", "", "/", "/a~2b", "nope", "/spec/containers/0/env/-",
    "/spec/containers/0/resources/limits", "/spec/containers/0/livenessProbe/httpGet/port",
])


@st.composite
def pod_and_ops(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    pod = draw(pods())
    if draw(st.booleans()):  # an Airflow pod: the protected labels and the base container are at stake
        pod.metadata.labels = {**(pod.metadata.labels or {}), "dag_id": "d", "task_id": "t", "try_number": "1"}
        pod.spec.containers[0].name = BASE
    doc = pod_to_json(pod)
    existing = pointers(doc)[1:]  # the whole document ("") comes from junk_paths, now and then
    objects = [p for p in existing if isinstance(_resolve(doc, p), dict) and p.count("/") >= 2]
    existing_paths = st.sampled_from(existing)
    new_keys = st.tuples(st.sampled_from(objects), st.text(max_size=6)).map(lambda t: f"{t[0]}/{_escape(t[1])}")
    map_entries = st.tuples(
        st.sampled_from(["/metadata/labels", "/metadata/annotations", "/spec/nodeSelector"]),
        st.text(min_size=1, max_size=6),
    ).map(lambda t: f"{t[0]}/{_escape(t[1])}")
    appends = existing_paths.map(lambda p: p + "/-")
    paths = st.one_of(existing_paths, new_keys, map_entries, map_entries, appends, junk_paths)
    values = st.one_of(st.text(max_size=12), st.text(max_size=12), realistic, json_values)
    ops = []
    for _ in range(draw(st.sampled_from([1, 2, 3, 1, 2, 3, MAX_OPS + 1]))):
        kind = draw(st.sampled_from(["add", "add", "remove", "replace", "move", "copy", "test"]))
        op: dict[str, Any] = {"op": kind, "path": draw(paths)}
        if kind in ("add", "replace", "test"):
            op["value"] = draw(values)
        if kind in ("move", "copy"):
            op["from"] = draw(paths)
        if draw(st.booleans()):
            op["policy"] = draw(st.sampled_from(["fuzz", "p/1", "ünï"]))
        ops.append(op)
    return pod, ops


def _resolve(doc: Any, pointer: str) -> Any:
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


def case(*ops: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """An explicit example on the KubernetesExecutor's worker pod."""
    return worker_pod(), list(ops)


EDGES = [
    # Empty strings are values like any other (a label, an env var, an annotation).
    case({"op": "add", "path": "/metadata/labels/team", "value": ""}),
    case({"op": "replace", "path": "/metadata/annotations/try_number", "value": ""}),
    case({"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "EMPTY", "value": ""}}),
    case({"op": "add", "path": "/metadata/labels/team", "value": "data", "policy": "team"},
         {"op": "test", "path": "/metadata/labels/team", "value": "data"}),
    case({"op": "test", "path": "/metadata/name", "value": "example-dag-task-1-abcdef"}),  # unchanged
    # One per documented rejection.
    case(*[{"op": "add", "path": f"/metadata/labels/l{i}", "value": "v"} for i in range(MAX_OPS + 1)]),
    case({"op": "add", "path": "/metadata/labels/team", "value": None}),
    case({"op": "add", "path": "/metadata/annotations/deep", "value": _deep(70)}),
    case({"op": "remove", "path": "/metadata/labels/absent"}),
    case({"op": "test", "path": "/metadata/name", "value": "other"}),
    case({"op": "remove", "path": "/metadata/name"}),
    case({"op": "replace", "path": "/metadata/labels/dag_id", "value": "other_dag"}),
    case({"op": "remove", "path": "/spec/containers/0"}),
    case({"op": "replace", "path": "", "value": ["not", "a", "pod"]}),
    case({"op": "add", "path": "/spec/containers/0/tty", "value": "yes"}),
    case({"op": "add", "path": "/spec/containers/0/imagee", "value": "busybox"}),
    case({"op": "add", "path": "/metadata/creationTimestamp", "value": "2024-01-01"}),  # read, then changed
]


def with_edges(test: Any) -> Any:
    for edge in reversed(EDGES):
        test = example(case=edge)(test)
    return test


def test_random_pods_times_random_patches(fuzz_hook: MutationHook) -> None:
    outcomes: Counter[str] = Counter()
    labels = fuzz_hook.settings.all_protected_labels

    @replayable(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @with_edges
    @given(case=pod_and_ops())
    def run(case: tuple[Any, list[dict[str, Any]]]) -> None:
        pod, ops = copy.deepcopy(case)  # an explicit example's pod is shared by every run of it
        annotations = dict(pod.metadata.annotations or {})
        annotations[FUZZ_ANNOTATION] = json.dumps(ops)
        pod.metadata.annotations = annotations
        doc = pod_to_json(pod)
        before = pod.to_dict()
        want = expected(doc, ops, labels)
        error: OpaMutationError | None = None
        try:
            fuzz_hook(pod)
        except OpaMutationError as exc:
            error = exc
        if error is not None:
            assert type(error) is PatchRejected, repr(error)
            got = reason_of(error)
            assert want.reason is not None, f"the hook rejected a patch the contract applies ({got}): {error}; ops {ops}"
            assert got == want.reason, f"rejected as {got!r}, the contract says {want.reason!r}: {error}; ops {ops}"
            assert pod.to_dict() == before
            assert pod_to_json(pod) == doc
            outcomes[got] += 1
            return
        assert want.reason is None, f"the hook applied a patch the contract rejects ({want.reason}): {ops}"
        result = assert_valid_typed_pod(pod)
        assert result == want.result, f"ops {ops}"
        outcomes["applied" if result != doc else "unchanged"] += 1

    run()
    total = sum(outcomes.values())
    print(f"\nfuzz: {total} examples, each one OPA round trip ({describe()}): {dict(outcomes)}")
    record("hypothesis fuzz", f"examples run (outcomes: {dict(sorted(outcomes.items()))})", total, unit="cases")
    assert set(REASONS) <= set(outcomes), f"rejection reasons never seen: {set(REASONS) - set(outcomes)}"
    assert outcomes["applied"] >= MIN_APPLIED * total, f"too few patches applied: {dict(outcomes)}"
