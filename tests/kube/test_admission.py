"""Admission agreement: what the hook lets through, a real API server accepts and stores as the hook left it.

Every library sample the hook admits goes through the real hook (a real OPA serving policies/ with the
sample's configuration, audit annotation on) and is then created in a namespace that enforces the
baseline Pod Security level and warns at restricted. It must be accepted (no 422 from validation, no
403 from admission), and the stored object must still hold everything the hook sent, mutation and audit
annotation included: the server may add (defaults, the service-account token volume, tolerations) but
not remove or change. Which samples restricted would reject is recorded, not asserted: the pod_security
policy will make that exact.

Two kinds of valid pods used to come back 422 because of what the library added (issue 16): Windows
pods and pods under a deprecated seccomp annotation. Their samples pass now; a control per case proves
the server still refuses what the library used to add.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_opa_mutation import AUDIT_ANNOTATION, MutationHook, Settings, pod_from_json, pod_to_json

from ..test_policy_samples import POLICIES, SAMPLES
from .cluster import ControlPlane
from .conftest import REPORT

ADMITTED = [s.path for s in SAMPLES if not s.expect.get("deny")]

# What security_context and pod_security_context added to every pod before they knew better.
OLD_CONTAINER_FIELDS = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def sample_name(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.name.removesuffix('.yaml.sample')}"


def through_hook(library_opa, path: Path, name: str) -> dict[str, Any]:
    """The sample's pod, renamed ``name`` (unique in the session), after the real hook."""
    sample = yaml.safe_load(path.read_text())
    document = copy.deepcopy(sample["pod"])
    document["metadata"]["name"] = name
    hook = MutationHook(Settings(url=library_opa(sample.get("config") or {}).url))
    try:
        pod = pod_from_json(document)
        hook(pod)
    finally:
        hook.close()
    sent = pod_to_json(pod)
    assert AUDIT_ANNOTATION in sent["metadata"]["annotations"]
    return sent


def differences(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``stored`` lost or changed what was ``sent`` (JSON pointers). Additions are fine; so is a
    sent ``false`` or empty list the server leaves out: the zero value of a plain (non-pointer) field,
    which Kubernetes does not serialise (``hostNetwork: false``); pointer fields such as
    ``allowPrivilegeEscalation: false`` are kept and compared."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path}: stored {stored!r}, sent an object"]
        found: list[str] = []
        for key, value in sent.items():
            if key in stored:
                found += differences(value, stored[key], f"{path}/{key}")
            elif not (value is False or value == []):
                found.append(f"{path}/{key}: missing (sent {value!r})")
        return found
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) < len(sent):
            return [f"{path}: stored {stored!r}, sent {sent!r}"]
        return [d for i, item in enumerate(sent) for d in differences(item, stored[i], f"{path}/{i}")]
    return [] if sent == stored else [f"{path}: stored {stored!r}, sent {sent!r}"]


@pytest.mark.parametrize("sample_path", ADMITTED, ids=sample_name)
def test_admitted_sample_is_accepted_at_baseline_and_stored_as_hooked(
    sample_path: Path, library_opa, kube_cluster: ControlPlane
):
    name = sample_name(sample_path).replace("/", "-").replace("_", "-").replace(".", "-")
    sent = through_hook(library_opa, sample_path, name)
    namespace = sent["metadata"]["namespace"]
    kube_cluster.namespace(namespace, enforce="baseline", warn="restricted")

    created = kube_cluster.create_pod(namespace, sent)

    assert created.status == 201, created
    assert differences(sent, created.body) == []
    stored = kube_cluster.get_pod(namespace, name)
    assert stored.ok, stored
    assert differences(sent, stored.body) == []
    assert stored.body["metadata"]["annotations"][AUDIT_ANNOTATION] == sent["metadata"]["annotations"][AUDIT_ANNOTATION]
    REPORT["restricted"][sample_name(sample_path)] = [w for w in created.warnings if "restricted:latest" in w]


def test_every_admitted_sample_is_sent(kube_cluster: ControlPlane):
    """The parametrisation above covers the library: the two new cases are among the admitted samples."""
    names = {sample_name(p) for p in ADMITTED}
    assert len(ADMITTED) >= 30
    assert {"security_context/05-windows-pod", "security_context/06-seccomp-annotations"} <= names
    assert {"pod_security_context/03-windows-pod", "pod_security_context/04-seccomp-annotation"} <= names


def _sample(policy: str, stem: str) -> Path:
    return POLICIES / policy / "samples" / f"{stem}.yaml.sample"


@pytest.mark.parametrize(
    "sample_path",
    [_sample("security_context", "05-windows-pod"), _sample("pod_security_context", "03-windows-pod")],
    ids=sample_name,
)
def test_windows_pod_gets_no_linux_only_fields(sample_path, library_opa, kube_cluster, kube_namespace):
    namespace = kube_namespace("baseline")
    sent = through_hook(library_opa, sample_path, "windows")
    sent["metadata"]["namespace"] = namespace
    assert sent["spec"]["securityContext"] == {"runAsNonRoot": True}
    assert sent["spec"]["containers"][0]["securityContext"] == {"runAsNonRoot": True}
    assert kube_cluster.create_pod(namespace, sent).status == 201

    # Control: what the library added before it knew about Windows is refused by validation.
    before = copy.deepcopy(sent)
    before["metadata"]["name"] = "windows-before-the-fix"
    before["spec"]["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    before["spec"]["containers"][0]["securityContext"].update(copy.deepcopy(OLD_CONTAINER_FIELDS))
    refused = kube_cluster.create_pod(namespace, before, dry_run=True)
    assert refused.status == 422, refused
    for field in (
        "spec.securityContext.seccompProfile",
        *(f"spec.containers[0].securityContext.{f}" for f in OLD_CONTAINER_FIELDS),
    ):
        assert f"{field}: Forbidden: cannot be set for a windows pod" in refused.message


def test_container_seccomp_annotations_are_not_contradicted(library_opa, kube_cluster, kube_namespace):
    namespace = kube_namespace("baseline")
    sent = through_hook(library_opa, _sample("security_context", "06-seccomp-annotations"), "seccomp-containers")
    sent["metadata"]["namespace"] = namespace
    contexts = {c["name"]: c["securityContext"] for c in sent["spec"]["containers"]}
    assert "seccompProfile" not in contexts["base"]  # annotation: unconfined
    assert "seccompProfile" not in contexts["tracer"]  # annotation: localhost/profiles/trace.json
    assert contexts["metrics"]["seccompProfile"] == {"type": "RuntimeDefault"}  # annotation: runtime/default
    assert "seccompProfile" not in sent["spec"]["securityContext"]  # the annotated containers would inherit it
    assert kube_cluster.create_pod(namespace, sent).status == 201

    # Control: a RuntimeDefault field beside the "unconfined" and Localhost annotations is refused.
    for index, container in ((0, "base"), (1, "tracer")):
        before = copy.deepcopy(sent)
        before["metadata"]["name"] = f"seccomp-before-the-fix-{container}"
        before["spec"]["containers"][index]["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
        refused = kube_cluster.create_pod(namespace, before, dry_run=True)
        assert refused.status == 422, refused
        assert (
            f"spec.containers[{index}].securityContext.seccompProfile.type: Forbidden: "
            "seccomp type in annotation and field must match" in refused.message
        )


def test_pod_seccomp_annotation_is_not_contradicted(library_opa, kube_cluster, kube_namespace):
    namespace = kube_namespace("baseline")
    sent = through_hook(library_opa, _sample("pod_security_context", "04-seccomp-annotation"), "seccomp-pod")
    sent["metadata"]["namespace"] = namespace
    assert sent["spec"]["securityContext"] == {"runAsNonRoot": True}
    assert "seccompProfile" not in sent["spec"]["containers"][0]["securityContext"]
    assert kube_cluster.create_pod(namespace, sent).status == 201

    before = copy.deepcopy(sent)
    before["metadata"]["name"] = "seccomp-pod-before-the-fix"
    before["spec"]["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    refused = kube_cluster.create_pod(namespace, before, dry_run=True)
    assert refused.status == 422, refused
    assert "spec.securityContext.seccompProfile.type: Forbidden: seccomp type in annotation and field must match" in (
        refused.message
    )


def test_a_bare_pod_after_the_hook_passes_restricted_and_capability_names_are_literal(
    library_opa, kube_cluster, kube_namespace
):
    """The library hardens a pod that sets nothing up to the restricted level, with the spelling
    PodSecurity compares literally: ``drop: ["ALL"]``. Other spellings of the same capabilities fail."""
    namespace = kube_namespace("restricted")
    sent = through_hook(library_opa, _sample("pod_security_context", "01-kpo-pod-defaults"), "bare")
    sent["metadata"]["namespace"] = namespace
    assert sent["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    admitted = kube_cluster.create_pod(namespace, sent, dry_run=True)
    assert admitted.status == 201, admitted
    assert admitted.warnings == []

    def with_capabilities(capabilities: dict[str, list[str]]) -> dict[str, Any]:
        pod = copy.deepcopy(sent)
        for container in (*pod["spec"]["containers"], *pod["spec"]["initContainers"]):
            container["securityContext"]["capabilities"] = capabilities
        return pod

    assert kube_cluster.create_pod(
        namespace, with_capabilities({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}), dry_run=True
    ).ok
    for capabilities in (
        {"drop": ["all"]},
        {"drop": ["ALL"], "add": ["CAP_NET_BIND_SERVICE"]},
        {"drop": ["ALL"], "add": ["net_bind_service"]},
    ):
        refused = kube_cluster.create_pod(namespace, with_capabilities(capabilities), dry_run=True)
        assert refused.status == 403, (capabilities, refused)
        assert "capabilities" in refused.message
