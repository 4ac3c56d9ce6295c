"""Empty lists and maps: the hook and the admission webhook must decide the same.

The API server decodes a pod into Go types before admission webhooks see it, and an empty slice or map
does not survive that (``capabilities: {drop: []}`` reaches the webhook as ``capabilities: {}``; checked
against kube-apiserver v1.34.2, /work/shared/README.md). The hook sees the pod as the DAG author wrote it.
So every library sample is judged twice by a real OPA serving policies/: with empty lists and maps
written wherever its pod lacks the field (as an author may write them), and as the API server would
hand that pod to the webhook. Same deny, same warn, and the same pod after each patch, but for the empty
values themselves.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import requests

from .test_policy_samples import SAMPLES

# The pod's Go map fields among those written below: an empty one is dropped. Empty structs behind
# pointers (securityContext, capabilities) and resources (a struct) are kept as {}.
MAPS = {"labels", "annotations", "nodeSelector", "limits", "requests"}


def api_decoded(value: Any) -> Any:
    """What survives the API server's decoding of ``value``: no empty list, no empty map field."""
    if isinstance(value, dict):
        return {
            key: api_decoded(item) for key, item in value.items() if not (item == [] or (item == {} and key in MAPS))
        }
    if isinstance(value, list):
        return [api_decoded(item) for item in value]
    return value


def _absent(doc: dict[str, Any], key: str, value: Any) -> None:
    doc.setdefault(key, copy.deepcopy(value))


def with_empties(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` with an empty list or map wherever it lacks one of these fields."""
    pod = copy.deepcopy(pod)
    metadata = pod.setdefault("metadata", {})
    _absent(metadata, "labels", {})
    _absent(metadata, "annotations", {})
    spec = pod.setdefault("spec", {})
    for key in ("tolerations", "volumes", "imagePullSecrets", "initContainers"):
        _absent(spec, key, [])
    _absent(spec, "nodeSelector", {})
    windows = (spec.get("os") or {}).get("name") == "windows"
    if isinstance(spec.get("securityContext"), dict) and not windows:
        # on a Windows pod validation refuses these even empty ("cannot be set for a windows pod")
        _absent(spec["securityContext"], "supplementalGroups", [])
        _absent(spec["securityContext"], "sysctls", [])
    for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        for key in ("env", "envFrom", "ports", "volumeMounts", "command", "args"):
            _absent(container, key, [])
        resources = container.setdefault("resources", {})
        _absent(resources, "limits", {})
        _absent(resources, "requests", {})
        if windows:
            continue  # capabilities, even empty, cannot be set on a Windows pod
        context = container.setdefault("securityContext", {})
        capabilities = context.setdefault("capabilities", {})
        _absent(capabilities, "drop", [])
        _absent(capabilities, "add", [])
    return pod


@pytest.fixture(scope="module")
def decide(library_opa):
    session = requests.Session()
    session.trust_env = False

    def call(config: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
        response = session.post(
            f"{library_opa(config).url}/v1/data/airflow/pod/decision", json={"input": document}, timeout=60
        )
        response.raise_for_status()
        return dict(response.json()["result"])

    yield call
    session.close()


def outcome(decide, config: dict[str, Any], pod: dict[str, Any], airflow: dict[str, Any]) -> tuple[Any, ...]:
    decision = decide(config, {"pod": pod, "airflow": airflow})
    ops = [{k: v for k, v in op.items() if k != "policy"} for op in decision["patch"]]
    after = jsonpatch.apply_patch(pod, ops)
    return api_decoded(after), decision["deny"], decision["warn"]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: f"{s.policy}/{s.name}")
def test_empty_values_decide_as_absent_ones(sample, decide):
    written = with_empties(sample.document["pod"])
    decoded = api_decoded(written)
    assert decoded != written
    airflow = sample.document.get("airflow") or {}
    by_hook = outcome(decide, sample.config, written, airflow)
    at_admission = outcome(decide, sample.config, decoded, airflow)
    assert by_hook[1:] == at_admission[1:]  # deny, warn
    assert by_hook[0] == at_admission[0]  # the pod after the patch
