"""The invariant every reliability test ends with: a valid, correctly typed pod, or a typed error."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client as k8s

from airflow_opa_mutation import pod_from_json, pod_to_json

#: kubernetes >= 37: pydantic models; before: the classic generated ones.
PYDANTIC_MODELS = hasattr(k8s.V1Pod, "model_validate")


def reference_pod(doc: dict[str, Any]) -> Any:
    """The kubernetes client's own reading of ``doc`` (not the hook's codec): the typing oracle."""
    if PYDANTIC_MODELS:
        return k8s.V1Pod.model_validate(doc)
    return k8s.ApiClient()._ApiClient__deserialize(doc, "V1Pod")


def client_reads_exactly(doc: Any) -> bool:
    """Whether the kubernetes client itself reads ``doc`` into a ``V1Pod`` that serializes back to exactly
    ``doc`` (strict JSON types: ``true`` is not ``1``). What the hook's codec must accept, no more: the
    client drops unknown fields and nulls and coerces values (``bool("no")``, lax pydantic), and each of
    those shows up here as a difference. The oracle of a "not a valid V1Pod" rejection."""
    try:
        again = k8s.ApiClient().sanitize_for_serialization(reference_pod(doc))
    except Exception:  # a type the model refuses, a required field missing, a list where a dict belongs
        return False
    return json.dumps(again, sort_keys=True) == json.dumps(doc, sort_keys=True)


def _fields(model: Any) -> list[str]:
    if PYDANTIC_MODELS:
        return list(type(model).model_fields)
    return list(model.openapi_types)


def same_types(got: Any, want: Any, where: str = "") -> None:
    """``got`` has a model exactly where ``want`` has one (no dict standing in for a V1Container...)."""
    assert type(got) is type(want), f"{where or '/'}: {type(got).__name__} where {type(want).__name__} belongs"
    if isinstance(want, list):
        assert len(got) == len(want), where
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            same_types(a, b, f"{where}/{index}")
    elif isinstance(want, dict):
        assert got.keys() == want.keys(), where
        for key in want:
            same_types(got[key], want[key], f"{where}/{key}")
    elif hasattr(want, "to_dict"):
        for name in _fields(want):
            same_types(getattr(got, name), getattr(want, name), f"{where}/{name}")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def assert_valid_typed_pod(pod: Any) -> dict[str, Any]:
    """The pod encodes to Kubernetes JSON that the client reads back into the very same typed tree."""
    assert type(pod) is k8s.V1Pod
    doc = pod_to_json(pod)
    same_types(pod, reference_pod(doc))
    assert pod_to_json(pod_from_json(doc)) == doc
    spec = pod.spec
    if spec is not None:
        for container in [*(spec.containers or []), *(spec.init_containers or [])]:
            assert type(container) is k8s.V1Container
    return doc
