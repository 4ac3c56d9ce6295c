"""Random pods x random RFC 6902 patches through the hook and one real OPA, one round trip per example.

The policy returns the patch the test put in the pod's ``fuzz/patch`` annotation, so every example is
one real request to OPA with its real answer. The oracle is independent of the hook: the same ops
applied with ``jsonpatch`` to the pod's JSON. Invariant, per example:

- the hook succeeded: the pod is a valid, correctly typed ``V1Pod`` (the kubernetes client reads its
  JSON back into the same typed tree) and its JSON is exactly what ``jsonpatch`` computed; or
- the hook raised a typed ``OpaMutationError`` subclass and ``pod.to_dict()`` is unchanged. Where
  ``jsonpatch`` itself cannot apply the patch, the hook must refuse it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_opa_mutation import InvalidDecision, MutationHook, OpaMutationError, PatchRejected, Settings, pod_to_json
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..test_concurrency_and_roundtrip import pods
from .figures import record
from .invariants import assert_valid_typed_pod

FUZZ_ANNOTATION = "fuzz/patch"
EXAMPLES = int(os.environ.get("AOM_FUZZ_EXAMPLES", "200"))
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzz_hook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutationHook]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    (folder / "policy.rego").write_text(
        "package airflow.pod\n\n"
        f'decision := {{"patch": json.unmarshal(input.pod.metadata.annotations["{FUZZ_ANNOTATION}"])}}\n'
    )
    server = LocalOpa([folder]).start()
    hook = MutationHook(Settings(url=server.url, timeout=10, audit_annotation=False, breaker_threshold=10**6))
    yield hook
    hook.close()
    server.stop()
    total = sum(OUTCOMES.values())
    print(f"\nfuzz: {total} examples, each one OPA round trip: {dict(OUTCOMES)}")
    record("hypothesis fuzz", f"examples run (outcomes: {dict(sorted(OUTCOMES.items()))})", total, unit="cases")


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
    [{"name": "E", "value": "v"}],
    {"cpu": "250m", "memory": "64Mi"},
    {"limits": {"cpu": "1"}},
    {"runAsNonRoot": True, "runAsUser": 1000},
    [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
    {"httpGet": {"path": "/", "port": "http"}},
    {"tcpSocket": {"port": 8080}},
    "v", 1, True,
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
    for _ in range(draw(st.integers(1, 3))):
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


def _expected(doc: dict[str, Any], ops: list[dict[str, Any]]) -> Any:
    """What RFC 6902 says the patch gives (``jsonpatch``, op by op), or None when it does not apply."""
    plain = [{k: v for k, v in op.items() if k != "policy"} for op in ops]
    try:
        return jsonpatch.JsonPatch(plain).apply(json.loads(json.dumps(doc)))
    except Exception:
        return None


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(case=pod_and_ops())
def test_random_pods_times_random_patches(fuzz_hook, case):
    pod, ops = case
    annotations = dict(pod.metadata.annotations or {})
    annotations[FUZZ_ANNOTATION] = json.dumps(ops)
    pod.metadata.annotations = annotations
    doc = pod_to_json(pod)
    before = pod.to_dict()
    expected = _expected(doc, ops)
    try:
        fuzz_hook(pod)
    except OpaMutationError as exc:
        error: OpaMutationError = exc
        assert type(error) in (PatchRejected, InvalidDecision), repr(error)
        assert pod.to_dict() == before
        assert pod_to_json(pod) == doc
        OUTCOMES[type(error).__name__] += 1
        if os.environ.get("AOM_FUZZ_DEBUG"):
            print("REJECT", str(error).split("[pod")[0][:160])
        return
    # Accepted: the patch applies under RFC 6902, and the pod is exactly and correctly typed its result.
    assert expected is not None, f"the hook accepted a patch RFC 6902 refuses: {ops}"
    got = assert_valid_typed_pod(pod)
    assert got == expected, f"ops {ops}"
    OUTCOMES["applied" if got != doc else "unchanged"] += 1
