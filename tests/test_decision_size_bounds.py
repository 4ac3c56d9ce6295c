"""A pod cannot make the library's decision large: measured on a real OPA serving policies/.

DAG authors write the pods the policies judge. Before the bounds, one image of ``evil.io/`` plus
600,000 ``<`` (which OPA writes as the six bytes ``\\u003c``) or 1,500 violating containers produced
responses of megabytes, past the hook's ``max_response_bytes``. Now every policy clips pod strings
in its messages and the framework keeps at most ``max_per_policy`` messages per policy and kind
(policies/lib/messages.rego), so the deny and warn lists depend on the number of policies only.
The patch still grows with the containers; the hook's ``max_containers`` and ``max_patch_ops``
bound that, so the pods here already carry what the mutating policies would add.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_opa_mutation.cli._local_opa import LocalOpa

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
CONFIG = {"policies": {"allowed_registries": {"enabled": True, "params": {"registries": ["registry.example.com"]}}}}
MAX_PER_POLICY = 20  # policies/lib/messages.rego
HARDENED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOpa]:
    folder = tmp_path_factory.mktemp("config")
    (folder / "config.json").write_text(json.dumps({"airflow": {"pod": {"config": CONFIG}}}))
    server = LocalOpa([POLICIES, folder / "config.json"]).start()
    yield server
    server.stop()


def pod(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "padded", "namespace": "airflow", "labels": {"dag_id": "tenant_etl"}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": containers,
        },
    }


def violating(i: int) -> dict[str, Any]:
    """Privileged, adds a capability, from a disallowed registry, mutable tag: four findings."""
    context = {**HARDENED, "privileged": True, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}
    return {"name": f"pad-{i}", "image": "evil.io/x:latest", "securityContext": context}


def decide(opa: LocalOpa, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST the pod as the hook does; the raw response size and the decision."""
    request = urllib.request.Request(
        f"{opa.url}/v1/data/airflow/pod/decision",
        data=json.dumps({"input": {"pod": body, "airflow": {"dag_id": "tenant_etl"}}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
    return len(raw), json.loads(raw)["result"]


def per_policy(entries: list[dict[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["policy"]] = counts.get(entry["policy"], 0) + 1
    return counts


def test_many_violating_containers_give_a_response_independent_of_their_number(opa: LocalOpa) -> None:
    sizes = {}
    for n in (25, 100, 1_500):
        size, decision = decide(opa, pod([violating(i) for i in range(n)]))
        sizes[n] = size
        assert decision["patch"] == []
        for kind in ("deny", "warn"):
            assert all(count <= MAX_PER_POLICY + 1 for count in per_policy(decision[kind]).values())
    print(f"decision response bytes by violating containers: {sizes}")
    summaries = [m["msg"] for m in decision["deny"] + decision["warn"] if m["msg"].startswith("... and")]
    assert sorted(summaries) == ["... and 1480 more", "... and 1480 more", "... and 2980 more"]
    # Four findings per container (6,000 messages, ~600 KB before the bounds); now the same few KB.
    assert sizes[1_500] < 16_384
    assert abs(sizes[1_500] - sizes[100]) < 512


def test_a_padded_image_gives_a_small_response(opa: LocalOpa) -> None:
    image = "evil.io/" + "<" * 600_000
    size, decision = decide(opa, pod([{"name": "pad", "image": image, "securityContext": HARDENED}]))
    print(f"decision response bytes for a 600,008-character image: {size}")
    assert size < 8_192
    assert {m["policy"] for m in decision["deny"]} == {"allowed_registries"}
    assert {m["policy"] for m in decision["warn"]} == {"image_tag"}
    assert all("…[600008 characters]" in m["msg"] for m in decision["deny"] + decision["warn"])
