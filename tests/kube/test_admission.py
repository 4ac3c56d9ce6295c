"""Admission agreement: the API server accepts exactly what the hook lets through, stored as the hook left it.

Every library sample and every demo pod (scripts/demo-pods) goes through the real hook (a real OPA
serving policies/ with the sample's configuration, audit annotation on) twice: with the shipped
configuration (pod_security enforces baseline) and with ``enforce: restricted`` merged over it. The pod
is then sent to a namespace whose ``pod-security.kubernetes.io/enforce`` label is the level pod_security
enforced on it (``privileged`` when a pod_security exemption matched the pod, as its README says):

- let through: created (201, neither a 422 from validation nor a 403 from admission), and the stored
  object still holds everything the hook sent, mutation and audit annotation included (the server may
  add defaults, not remove or change). At baseline the namespace also warns at restricted, and the
  server's warning is pod_security's warnings word for word.
- denied: nothing is created. When pod_security denied, the pod the hook would have sent (the decision's
  patch applied) is refused by the server at that level (``dryRun=All``) with exactly pod_security's
  reasons, and so is the pod as Airflow built it: agreement both ways. Denials by other policies
  (registries, privileged, host paths...) are stricter than Pod Security by design: only the denial and
  the absence of a pod are asserted.

One pod is allowed by the hook and refused by the server on purpose: ``exempt_images`` (Gatekeeper's
``exemptImages``) has no PodSecurity counterpart, so a namespace enforcing the level refuses the exempted
container; that sample asserts the refusal names only it.

Two kinds of valid pods used to come back 422 because of what the library added (issue 16): Windows
pods and pods under a deprecated seccomp annotation. Their samples pass now; a control per case proves
the server still refuses what the library used to add.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from airflow_opa_mutation import AUDIT_ANNOTATION, MutationHook, PodDenied, Settings, pod_from_json, pod_to_json
from airflow_opa_mutation.cli.verify import would_be

from ..test_policy_samples import POLICIES, SAMPLES
from .cluster import ControlPlane
from .conftest import REPORT

REPO = Path(__file__).resolve().parents[2]
DEMO_PODS = sorted((REPO / "scripts" / "demo-pods").glob("*.yaml"))
RESTRICTED = {"policies": {"pod_security": {"params": {"enforce": "restricted"}}}}
# Allowed by the hook, refused by a namespace enforcing the level: the exemption PodSecurity cannot express,
# with the container it exempts.
IMAGE_EXEMPTIONS = {"pod_security/05-exempt-image": "strace"}

# What security_context and pod_security_context added to every pod before they knew better.
OLD_CONTAINER_FIELDS = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def sample_name(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.name.removesuffix('.yaml.sample')}"


@dataclass
class Case:
    """A pod Airflow could send: a library sample or a demo pod, with its configuration delta."""

    name: str
    pod: dict[str, Any]
    config: dict[str, Any]

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


CASES = [Case(sample_name(s.path), s.document["pod"], s.config) for s in SAMPLES] + [
    Case(f"demo/{p.stem}", yaml.safe_load(p.read_text())["pod"], {}) for p in DEMO_PODS
]


def merged(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """``delta`` merged over ``base`` (mappings recursively, anything else replaced), as OPA merges data."""
    out = copy.deepcopy(base)
    for key, value in delta.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


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


def enforced_level(url: str, outcome: Any) -> str:
    """The level pod_security enforced on the pod: its ``enforce`` parameter, or ``privileged`` when an
    exemption of it (or a global one) matched; asked of the same OPA with the input the hook sent."""
    document = {"input": {"pod": outcome.before, "airflow": outcome.airflow}}
    with requests.Session() as session:
        session.trust_env = False
        active = session.post(f"{url}/v1/data/airflow/pod/lib/framework/active", json=document, timeout=30)
        params = session.post(f"{url}/v1/data/airflow/pod/policies/pod_security/params", json=document, timeout=30)
    active.raise_for_status()
    params.raise_for_status()
    if "pod_security" not in active.json()["result"]:
        return "privileged"
    level = params.json()["result"]["enforce"]
    assert level in ("baseline", "restricted"), level
    return str(level)


def aggregated(messages: list[str], prefix: str) -> str:
    """pod_security's messages (one per failed check) as PodSecurity words them: one line, ", " between."""
    assert all(m.startswith(prefix + ": ") for m in messages), messages
    return prefix + ": " + ", ".join(m.removeprefix(prefix + ": ") for m in messages)


@dataclass
class Hooked:
    """One case through the real hook: what it decided, the pod it left, and where the pod goes."""

    name: str
    document: dict[str, Any]  # the pod as Airflow built it (renamed)
    outcome: Any  # hook.evaluate's Outcome
    pod: Any  # the V1Pod after hook(): mutated, or untouched when denied
    denied: tuple[Any, ...]  # PodDenied's messages
    would: dict[str, Any] | None  # the pod the decision's patch makes, for a denied pod too
    enforced: str  # the level pod_security enforced on it
    namespace: str  # labelled with that level


def hooked(case: Case, level: str, library_opa) -> Hooked:
    config = case.config if level == "baseline" else merged(case.config, RESTRICTED)
    opa = library_opa(config)
    name = f"{case.slug}-{level}"
    document = copy.deepcopy(case.pod)
    document["metadata"]["name"] = name
    hook = MutationHook(Settings(url=opa.url))
    try:
        outcome = hook.evaluate(pod_from_json(document))
        assert outcome.decision is not None, outcome.error
        pod = pod_from_json(document)
        denied: tuple[Any, ...] = ()
        try:
            hook(pod)
        except PodDenied as exc:
            denied = exc.messages
        would = would_be(hook, outcome)
    finally:
        hook.close()
    assert denied == outcome.decision.deny
    enforced = enforced_level(opa.url, outcome)
    namespace = f"{document['metadata'].get('namespace', 'default')}-{enforced}"
    return Hooked(name, document, outcome, pod, denied, would, enforced, namespace)


def refused_both_ways(kube: ControlPlane, h: Hooked, ours: list[str]) -> None:
    """The pod the hook would have sent, and the pod as Airflow built it, are refused at the level, the
    first with exactly pod_security's reasons."""
    assert h.would is not None
    for label, document in (("patched", h.would), ("original", h.document)):
        attempt = copy.deepcopy(document)
        attempt["metadata"]["namespace"] = h.namespace
        refused = kube.create_pod(h.namespace, attempt, dry_run=True)
        assert refused.status == 403, (label, refused)
        if label == "patched":
            reasons = aggregated(ours, f'violates PodSecurity "{h.enforced}:latest"')
            assert refused.message == f'pods "{h.name}" is forbidden: {reasons}'


def created_as_sent(kube: ControlPlane, h: Hooked, sent: dict[str, Any], created: Any) -> None:
    """Created, stored with all the hook sent (audit annotation included), warned as pod_security warned."""
    assert created.status == 201, created
    assert differences(sent, created.body) == []
    stored = kube.get_pod(h.namespace, h.name)
    assert stored.ok, stored
    assert differences(sent, stored.body) == []
    if h.outcome.changed:
        audit = sent["metadata"]["annotations"][AUDIT_ANNOTATION]
        assert stored.body["metadata"]["annotations"][AUDIT_ANNOTATION] == audit
    server_warnings = [w for w in created.warnings if "PodSecurity" in w]
    ours = [m.msg for m in h.outcome.decision.warn if m.policy == "pod_security"]
    if h.enforced == "baseline":
        prefix = 'would violate PodSecurity "restricted:latest"'
        assert server_warnings == ([aggregated(ours, prefix)] if ours else [])
    else:
        assert server_warnings == [] and ours == []


@pytest.mark.parametrize("level", ["baseline", "restricted"])  # the shipped configuration, or enforce: restricted
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_server_accepts_exactly_what_the_hook_lets_through(
    case: Case, level: str, library_opa, kube_cluster: ControlPlane
):
    h = hooked(case, level, library_opa)
    kube_cluster.namespace(h.namespace, enforce=h.enforced, warn="restricted" if h.enforced == "baseline" else None)
    record = (case.name, level, h.enforced)
    if h.denied:
        assert kube_cluster.get_pod(h.namespace, h.name).status == 404
        ours = [m.msg for m in h.denied if m.policy == "pod_security"]
        if ours:
            refused_both_ways(kube_cluster, h, ours)
        # else: stricter than Pod Security by design (registries, privileged, host paths...)
        REPORT["admission"].append((*record, "denied by pod_security" if ours else "denied by other policies"))
        return

    sent = pod_to_json(h.pod)
    sent["metadata"]["namespace"] = h.namespace
    assert (AUDIT_ANNOTATION in sent["metadata"].get("annotations", {})) == h.outcome.changed
    created = kube_cluster.create_pod(h.namespace, sent)
    if case.name in IMAGE_EXEMPTIONS and h.enforced != "privileged":
        exempted = IMAGE_EXEMPTIONS[case.name]
        assert created.status == 403, created
        assert f'container "{exempted}"' in created.message
        assert not re.search(r'containers? "(?!' + exempted + r'")', created.message)
        REPORT["admission"].append((*record, "refused: image exemption"))
        return
    created_as_sent(kube_cluster, h, sent, created)
    REPORT["admission"].append((*record, "created"))


def test_every_sample_and_demo_pod_is_sent(kube_cluster: ControlPlane):
    """The parametrisation above covers the library and the demo, the two new cases among them."""
    names = {case.name for case in CASES}
    assert len(CASES) == len(SAMPLES) + len(DEMO_PODS) and len(SAMPLES) >= 45 and len(DEMO_PODS) >= 4
    assert {f"demo/{p.stem}" for p in DEMO_PODS} <= names
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
