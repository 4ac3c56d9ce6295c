"""pod_security against Kubernetes' own Pod Security code (k8s.io/pod-security-admission, tools/k8s-oracle).

Hypothesis generates pods over every field a Pod Security check reads — absent, safe and violating
values, at pod and container level, 1-3 containers, 0-3 initContainers, sometimes an ephemeral
container. Every pod is one the API server's validation accepts (tests/kube/test_dry_run.py sends them to
one), since PodSecurity admission only ever judges valid pods: the drawn fields are reconciled the way
validation demands (``valid``), so a Windows pod carries no Linux-only field, annotations and fields agree. For each pod P, the library with its shipped defaults returns a patch; M is P with that
patch (what Kubernetes would receive). The oracle judges M at baseline and restricted (latest), and:

- under the defaults (enforce baseline, warn restricted): pod_security's denies are exactly the oracle's
  baseline failures and its warnings exactly the restricted failures, each as Kubernetes words it
  (``violates PodSecurity "baseline:latest": <reason> (<detail>)``);
- under enforce restricted: the denies are exactly the restricted failures, and there are no warnings.

So deny <=> rejected, warning <=> rejected at restricted, and the control and containers named agree.
Every sample pod of the library goes through the same check. ``AOM_PSS_EXAMPLES`` (default 5000) sets
the number of pods, ``AOM_PSS_SEED`` replays a run (the seed is printed).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from airflow_opa_mutation.cli._local_opa import LocalOpa

from .k8s_oracle import K8sOracle

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
EXAMPLES = int(os.environ.get("AOM_PSS_EXAMPLES", "5000"))
BATCH = 10  # pods per hypothesis example: one oracle run judges a batch
SEED = int(os.environ.get("AOM_PSS_SEED") or random.SystemRandom().randrange(2**32))
REPLAY = f"replay with AOM_PSS_SEED={SEED}"


def oracle(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kubernetes' verdicts on a batch of pods (one k8s-oracle run); none may fail to decode."""
    answers = K8sOracle().pod_security(pods)
    for answer in answers:
        assert "error" not in answer, answer
    return answers


class Library:
    """A real OPA serving policies/ with a configuration delta; one POST per decision."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        paths: list[Path] = [POLICIES]
        if config:
            (folder / "config.json").write_text(json.dumps({"airflow": {"pod": {"config": config}}}))
            paths.append(folder / "config.json")
        self.server = LocalOpa(paths).start()
        self.session = requests.Session()
        self.session.trust_env = False

    def decide(self, pod: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.server.url}/v1/data/airflow/pod/decision"
        response = self.session.post(url, json={"input": {"pod": pod, "airflow": {}}}, timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()["result"]
        return result

    def close(self) -> None:
        self.session.close()
        self.server.stop()


def ours(decision: dict[str, Any], kind: str) -> list[str]:
    return [m["msg"] for m in decision[kind] if m["policy"] == "pod_security"]


def theirs(verdict: dict[str, Any], level: str, prefix: str) -> list[str]:
    return [f'{prefix} "{level}:latest": {f["reason"]} ({f["detail"]})' for f in verdict[level]["forbidden"]]


class Differential:
    def __init__(self, folder: Path) -> None:
        (folder / "default").mkdir()
        (folder / "restricted").mkdir()
        self.default = Library(folder / "default", {})
        self.restricted = Library(
            folder / "restricted", {"policies": {"pod_security": {"params": {"enforce": "restricted"}}}}
        )
        self.pods = 0
        self.rejected = {"baseline": 0, "restricted": 0}

    def check(self, pods: list[dict[str, Any]], where: str) -> None:
        """Both configurations' decisions on each pod against the oracle's verdicts on its mutated form."""
        decisions = [(self.default.decide(pod), self.restricted.decide(pod)) for pod in pods]
        mutated = [
            jsonpatch.apply_patch(pod, [{k: v for k, v in op.items() if k != "policy"} for op in first["patch"]])
            for pod, (first, _) in zip(pods, decisions, strict=True)
        ]
        for m, (first, second), verdict in zip(mutated, decisions, oracle(mutated), strict=True):
            context = f"{where}; {REPLAY}\nM = {json.dumps(m)}"
            assert ours(first, "deny") == theirs(verdict, "baseline", "violates PodSecurity"), context
            assert ours(first, "warn") == theirs(verdict, "restricted", "would violate PodSecurity"), context
            assert second["patch"] == first["patch"], context
            assert ours(second, "deny") == theirs(verdict, "restricted", "violates PodSecurity"), context
            assert ours(second, "warn") == [], context
            self.pods += 1
            for level in self.rejected:
                self.rejected[level] += not verdict[level]["allowed"]

    def close(self) -> None:
        self.default.close()
        self.restricted.close()


def say(request: pytest.FixtureRequest, line: str) -> None:
    """Print past pytest's output capture (the seed must be seen even when the run passes)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


@pytest.fixture(scope="module")
def differential(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Differential]:
    say(request, f"pod_security differential: seed {SEED} ({REPLAY}), {EXAMPLES} generated pods")
    started = time.monotonic()
    diff = Differential(tmp_path_factory.mktemp("pss"))
    yield diff
    diff.close()
    say(
        request,
        f"pod_security differential: {diff.pods} pods (generated and samples), seed {SEED}, 0 disagreements; "
        f"the oracle rejected {diff.rejected['baseline']} at baseline, {diff.rejected['restricted']} at restricted; "
        f"{time.monotonic() - started:.0f} s",
    )


# --- the pods ------------------------------------------------------------------


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value or None (None: the field is left out)."""
    return st.none() | strategy


booleans = maybe(st.booleans())
users = maybe(st.sampled_from([0, 1000, 65534]))
profile_types = st.sampled_from(["RuntimeDefault", "Localhost", "Unconfined"])


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, str]:
    """A seccomp or AppArmor profile (Kubernetes requires its type)."""
    kind = draw(profile_types)
    profile = {"type": kind}
    if kind == "Localhost":
        profile["localhostProfile"] = "profiles/audit.json"
    return profile


selinux = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t", "spc_t"]
        ),
        "user": st.sampled_from(["", "system_u"]),
        "role": st.sampled_from(["", "system_r"]),
        "level": st.sampled_from(["s0:c123,c456"]),
    },
)
capability_names = st.sampled_from(
    ["NET_BIND_SERVICE", "CHOWN", "SYS_CHROOT", "SYS_ADMIN", "NET_RAW", "NET_ADMIN", "chown", "CAP_CHOWN", "ALL"]
)
capabilities = st.fixed_dictionaries(
    {},
    optional={
        "add": st.lists(capability_names, max_size=3, unique=True),
        "drop": st.sampled_from([["ALL"], ["all"], [], ["NET_RAW"], ["NET_RAW", "ALL"]]),
    },
)
container_context = st.fixed_dictionaries(
    {},
    optional={
        "privileged": st.booleans(),
        "allowPrivilegeEscalation": st.booleans(),
        "capabilities": capabilities,
        "runAsNonRoot": st.booleans(),
        "runAsUser": st.sampled_from([0, 1000]),
        "seccompProfile": profiles(),
        "appArmorProfile": profiles(),
        "seLinuxOptions": selinux,
        "procMount": st.sampled_from(["Default", "Unmasked"]),
        "windowsOptions": st.fixed_dictionaries({"hostProcess": st.booleans()}),
        "readOnlyRootFilesystem": st.booleans(),
    },
)
hosts = st.sampled_from(["", "127.0.0.1", "metadata.google.internal"])
handler = st.one_of(
    st.fixed_dictionaries({"httpGet": st.fixed_dictionaries({"port": st.just(8080)}, optional={"host": hosts})}),
    st.fixed_dictionaries({"tcpSocket": st.fixed_dictionaries({"port": st.just(8080)}, optional={"host": hosts})}),
)
ports = st.lists(
    st.fixed_dictionaries(
        {"containerPort": st.sampled_from([80, 8080])}, optional={"hostPort": st.sampled_from([0, 22, 8080])}
    ),
    max_size=2,
    unique_by=lambda p: p["containerPort"],
)
images = st.sampled_from(["apache/airflow:3.0.2", "python:3.11-slim", "quay.io/acme/fetcher:1.4", "busybox"])


@st.composite
def containers(draw: st.DrawFn, name: str, ephemeral: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": draw(images)}
    context = draw(maybe(container_context))
    if context is not None:
        container["securityContext"] = context
    if ephemeral:  # Kubernetes forbids ports, probes and lifecycle on ephemeral containers
        return container
    if draw(st.booleans()):
        container["ports"] = draw(ports)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if draw(st.integers(0, 3)) == 0:
            container[probe] = draw(handler)
    if draw(st.integers(0, 3)) == 0:
        container["lifecycle"] = draw(st.fixed_dictionaries({"preStop": handler}, optional={"postStart": handler}))
    return container


volume_sources = st.sampled_from(
    [
        {"emptyDir": {}},
        {"configMap": {"name": "cfg"}},
        {"secret": {"secretName": "s"}},
        {"projected": {"sources": []}},
        {"downwardAPI": {}},
        {"persistentVolumeClaim": {"claimName": "c"}},
        {"ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}},
        {"image": {"reference": "busybox"}},
        {"csi": {"driver": "x"}},
        {"hostPath": {"path": "/var/log"}},
        {"nfs": {"server": "nfs", "path": "/"}},
        {"gitRepo": {"repository": "https://example.com/r.git"}},
        {"iscsi": {"targetPortal": "t", "iqn": "iqn.2001-04.com.example:disk", "lun": 0}},
    ]
)
sysctl_names = st.sampled_from(
    [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.ip_local_reserved_ports",
        "kernel.msgmax",
        "net/ipv4/ip_local_port_range",
        "vm.swappiness",
    ]
)
pod_context = st.fixed_dictionaries(
    {},
    optional={
        "runAsNonRoot": st.booleans(),
        "runAsUser": st.sampled_from([0, 1000]),
        "seccompProfile": profiles(),
        "appArmorProfile": profiles(),
        "seLinuxOptions": selinux,
        "sysctls": st.lists(st.builds(lambda n: {"name": n, "value": "1"}, sysctl_names), max_size=2),
        "windowsOptions": st.fixed_dictionaries({"hostProcess": st.booleans()}),
        "fsGroup": st.just(1000),
    },
)
# What validation lets each annotation hold ("localhost" alone, "docker/default" for AppArmor, "" for
# seccomp are refused).
annotation_values = {
    "apparmor": st.sampled_from(["runtime/default", "localhost/profile", "unconfined", ""]),
    "seccomp": st.sampled_from(["runtime/default", "localhost/profile", "unconfined", "docker/default"]),
}
# The profile field an annotation value stands for (validation wants both to agree).
ANNOTATED_PROFILES = {
    "runtime/default": {"type": "RuntimeDefault"},
    "docker/default": {"type": "RuntimeDefault"},
    "unconfined": {"type": "Unconfined"},
    "localhost/profile": {"type": "Localhost", "localhostProfile": "profile"},
}
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
# Fields validation refuses on a Windows pod (pod level, container level).
LINUX_ONLY_POD = ("seLinuxOptions", "seccompProfile", "appArmorProfile", "sysctls", "fsGroup", "runAsUser")
LINUX_ONLY_CONTAINER = (
    "seLinuxOptions",
    "seccompProfile",
    "appArmorProfile",
    "capabilities",
    "readOnlyRootFilesystem",
    "privileged",
    "allowPrivilegeEscalation",
    "procMount",
    "runAsUser",
)


def _reconcile_windows(spec: dict[str, Any], contexts: list[dict[str, Any]]) -> None:
    """Linux-only fields off Windows pods, Windows options off Linux pods, and hostProcess as validation
    wants it: when any container is a HostProcess one, all are, and the pod uses the host network."""
    pod = spec.get("securityContext") or {}
    os_name = (spec.get("os") or {}).get("name")
    if os_name == "windows":
        for key in LINUX_ONLY_POD:
            pod.pop(key, None)
        for context in contexts:
            for key in LINUX_ONLY_CONTAINER:
                context.pop(key, None)
        for key in ("hostUsers", "hostPID", "hostIPC"):
            spec.pop(key, None)
    elif os_name == "linux":
        for context in [pod, *contexts]:
            context.pop("windowsOptions", None)
    if any((c.get("windowsOptions") or {}).get("hostProcess") for c in [pod, *contexts]):
        for context in contexts:
            if "windowsOptions" in context:
                context["windowsOptions"]["hostProcess"] = True
        spec.setdefault("securityContext", pod).setdefault("windowsOptions", {})["hostProcess"] = True
        spec["hostNetwork"] = True


def _reconcile_annotations(metadata: dict[str, Any], spec: dict[str, Any], named: dict[str, Any]) -> None:
    """Each profile field a deprecated annotation covers says what the annotation says."""
    annotations = metadata.get("annotations", {})
    pod = spec.get("securityContext") or {}
    for key, value in list(annotations.items()):
        profile = ANNOTATED_PROFILES.get(value)
        if key == SECCOMP_POD and "seccompProfile" in pod:
            pod["seccompProfile"] = dict(profile or {})
        elif key.startswith(SECCOMP_PREFIX):
            context = named[key.removeprefix(SECCOMP_PREFIX)]
            if "seccompProfile" in context:
                context["seccompProfile"] = dict(profile or {})
        elif key.startswith(APPARMOR_PREFIX):
            context = named[key.removeprefix(APPARMOR_PREFIX)]
            if "appArmorProfile" in context or "appArmorProfile" in pod:
                if profile is None:  # "": no profile matches it
                    del annotations[key]
                else:
                    context["appArmorProfile"] = dict(profile)


def _reconcile_ports_and_sysctls(spec: dict[str, Any], containers: list[dict[str, Any]]) -> None:
    """Host ports unique in the pod (on the host network every container port is one: the server's
    defaulting makes it so); no sysctl twice, none of the network (IPC) namespace's on the host's network
    (IPC)."""
    seen: set[int] = set()
    for container in containers:
        if "ports" not in container:
            continue
        if spec.get("hostNetwork"):
            container["ports"] = [p for p in container["ports"] if p["containerPort"] not in seen]
            for port in container["ports"]:
                seen.add(port["containerPort"])
                port["hostPort"] = port["containerPort"]
            continue
        for port in container["ports"]:
            if port.get("hostPort") in seen:
                del port["hostPort"]
            elif port.get("hostPort"):
                seen.add(port["hostPort"])
    pod = spec.get("securityContext") or {}
    if "sysctls" in pod:
        kept: dict[str, dict[str, str]] = {}
        for sysctl in pod["sysctls"]:
            name = sysctl["name"].replace("/", ".")
            if spec.get("hostNetwork") and name.startswith("net."):
                continue
            if spec.get("hostIPC") and name.startswith(("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")):
                continue
            kept.setdefault(name, sysctl)
        pod["sysctls"] = list(kept.values())


def valid(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` made one the API server's validation accepts, keeping what Pod Security reads wherever
    validation allows it (the rules of k8s.io/kubernetes pkg/apis/core/validation, v1.34)."""
    metadata, spec = pod["metadata"], pod["spec"]
    every = [*spec.get("initContainers", []), *spec["containers"], *spec.get("ephemeralContainers", [])]
    contexts = [c["securityContext"] for c in every if "securityContext" in c]
    _reconcile_windows(spec, contexts)
    named = {c["name"]: c.setdefault("securityContext", {}) for c in every}
    _reconcile_annotations(metadata, spec, named)
    for context in contexts:
        if context.get("privileged") and context.get("allowPrivilegeEscalation") is False:
            context["allowPrivilegeEscalation"] = True  # privileged escalates: false contradicts it
    for container in every:
        if container["securityContext"] == {}:
            del container["securityContext"]  # only there for _reconcile_annotations
    if any(c.get("procMount") == "Unmasked" for c in contexts):
        if any(spec.get(f) for f in ("hostNetwork", "hostPID", "hostIPC")) or (spec.get("os") or {}).get("name") == "windows":
            for context in contexts:
                context.pop("procMount", None)
        else:
            spec["hostUsers"] = False  # an unmasked /proc needs a user namespace
    for init in spec.get("initContainers", []):
        if any(k in init for k in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle")):
            init["restartPolicy"] = "Always"  # probes and lifecycle: only on sidecar init containers
    _reconcile_ports_and_sysctls(spec, [*spec.get("initContainers", []), *spec["containers"]])
    return pod


@st.composite
def pods(draw: st.DrawFn, ephemeral: bool = True) -> dict[str, Any]:
    """A valid pod; ``ephemeral=False``: never an ephemeral container, which Kubernetes refuses at creation
    (they are added to a running pod through its ephemeralcontainers subresource)."""
    names = ["base"] + [f"side{i}" for i in range(draw(st.integers(0, 2)))]
    init_names = [f"init{i}" for i in range(draw(st.integers(0, 3)))]
    spec: dict[str, Any] = {
        "containers": [draw(containers(n)) for n in names],
        "restartPolicy": "Never",
    }
    if init_names:
        spec["initContainers"] = [draw(containers(n)) for n in init_names]
    if draw(st.integers(0, 4)) == 0 and ephemeral:
        spec["ephemeralContainers"] = [draw(containers("debug", ephemeral=True))]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        value = draw(maybe(st.booleans()))
        if value is not None and draw(st.integers(0, 2)) == 0:
            spec[field] = value
    context = draw(maybe(pod_context))
    if context is not None:
        spec["securityContext"] = context
    if draw(st.integers(0, 5)) == 0:
        spec["os"] = {"name": draw(st.sampled_from(["linux", "windows"]))}
    volumes = draw(st.lists(volume_sources, max_size=3))
    if volumes:
        spec["volumes"] = [{"name": f"v{i}", **source} for i, source in enumerate(volumes)]
    annotations: dict[str, str] = {}
    for key in draw(
        st.lists(
            st.sampled_from(
                [f"{APPARMOR_PREFIX}{n}" for n in names] + [SECCOMP_POD, f"{SECCOMP_PREFIX}base"]
            ),
            max_size=2,
            unique=True,
        )
    ):
        annotations[key] = draw(annotation_values["apparmor" if key.startswith(APPARMOR_PREFIX) else "seccomp"])
    metadata: dict[str, Any] = {"name": "p", "namespace": "airflow", "labels": {"dag_id": "d"}}
    if annotations:
        metadata["annotations"] = annotations
    return valid({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})


@seed(SEED)
@settings(
    max_examples=-(-EXAMPLES // BATCH),
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(pods(), min_size=BATCH, max_size=BATCH))
def test_pod_security_agrees_with_kubernetes(differential: Differential, batch: list[dict[str, Any]]) -> None:
    differential.check(batch, "generated pod")


@pytest.mark.parametrize(
    "sample", sorted(POLICIES.glob("*/samples/*.yaml.sample")), ids=lambda p: f"{p.parent.parent.name}/{p.name}"
)
def test_every_sample_pod_agrees_with_kubernetes(differential: Differential, sample: Path) -> None:
    differential.check([yaml.safe_load(sample.read_text())["pod"]], f"sample {sample.relative_to(REPO)}")
