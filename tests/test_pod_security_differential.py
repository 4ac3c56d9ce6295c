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
Every sample pod of the library goes through the same check, under the sample's own configuration.

The defaults' mutators harden almost every generated pod before pod_security sees it, so those pods
seldom reach pod_security's fast path (fast.rego) and never reach it *missing* a field the mutators add:
that is how a fast path that forgot "drop ALL" passed 15,000 pods. A second generator aims at it: a
**near-hardened** pod starts from a pod the fast path accepts (checked), then exactly one field any level
reads is removed or altered — at pod level or in a container of each kind — and it is judged with the
mutators off (``security_context`` and ``pod_security_context`` disabled). Every pod records which path
pod_security took (``_clean`` queried on the pod it judged); the run asserts both paths, and every place
an alteration can land, were reached often.

``AOM_PSS_EXAMPLES`` (default 3000) and ``AOM_PSS_NEAR`` (default 2000) set the number of pods of each
generator, ``AOM_PSS_SEED`` replays a run (the seed is printed).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import requests
import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from airflow_opa_mutation.cli._local_opa import LocalOpa

from .k8s_oracle import K8sOracle

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
EXAMPLES = int(os.environ.get("AOM_PSS_EXAMPLES", "3000"))
NEAR = int(os.environ.get("AOM_PSS_NEAR", "2000"))
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
        folder.mkdir(parents=True, exist_ok=True)
        if config:
            (folder / "config.json").write_text(json.dumps({"airflow": {"pod": {"config": config}}}))
            paths.append(folder / "config.json")
        self.server = LocalOpa(paths).start()
        self.session = requests.Session()
        self.session.trust_env = False

    def query(self, path: str, pod: dict[str, Any]) -> Any:
        """The document at ``path`` for ``pod`` (None when undefined)."""
        url = f"{self.server.url}/v1/data/{path}"
        response = self.session.post(url, json={"input": {"pod": pod, "airflow": {}}}, timeout=30)
        response.raise_for_status()
        return response.json().get("result")

    def decide(self, pod: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.query("airflow/pod/decision", pod)
        return result

    def fast_path(self, judged: dict[str, Any]) -> bool:
        """Whether pod_security took its fast path on ``judged`` (the pod as patched, which it judges)."""
        return self.query("airflow/pod/policies/pod_security/_clean", judged) is True

    def judged_containers(self, judged: dict[str, Any]) -> set[str]:
        """The names of the containers pod_security judges (exempt images are not judged)."""
        containers = self.query("airflow/pod/policies/pod_security/containers", judged) or []
        return {c["name"] for c in containers}

    def close(self) -> None:
        self.session.close()
        self.server.stop()


def ours(decision: dict[str, Any], kind: str) -> list[str]:
    return [m["msg"] for m in decision[kind] if m["policy"] == "pod_security"]


def theirs(verdict: dict[str, Any], level: str, prefix: str) -> list[str]:
    if level == "privileged":
        return []
    return [f'{prefix} "{level}:latest": {f["reason"]} ({f["detail"]})' for f in verdict[level]["forbidden"]]


# The library's mutators that add what Pod Security asks for: off for near-hardened pods.
MUTATORS_OFF = {"security_context": {"enabled": False}, "pod_security_context": {"enabled": False}}


def merged(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """``delta`` deep-merged over ``base`` (objects key by key), as the library merges configuration."""
    out = dict(base)
    for key, value in delta.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class Judge:
    """One configuration: its OPA and the levels its pod_security enforces and warns at."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.library = Library(folder, config)
        params = config.get("policies", {}).get("pod_security", {}).get("params", {})
        self.enforce = params.get("enforce", "baseline")
        self.warn = params.get("warn", "restricted")
        assert params.get("version", "latest") == "latest", "the oracle judges at latest"
        self.exempting = bool(params.get("exempt_images"))

    def disagreements(self, decision: dict[str, Any], verdict: dict[str, Any]) -> list[str]:
        """pod_security's messages against the oracle's failures at this configuration's levels."""
        deny = theirs(verdict, self.enforce, "violates PodSecurity")
        warn = [] if self.warn == self.enforce else theirs(verdict, self.warn, "would violate PodSecurity")
        problems = []
        if ours(decision, "deny") != deny:
            problems.append(f"deny at {self.enforce}: ours {ours(decision, 'deny')}, Kubernetes {deny}")
        if ours(decision, "warn") != warn:
            problems.append(f"warn at {self.warn}: ours {ours(decision, 'warn')}, Kubernetes {warn}")
        return problems


class Differential:
    """Pairs of configurations (the pair's first gives the patch), the oracle, and the tallies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.judges: dict[str, Judge] = {}
        self.pods: Counter[str] = Counter()
        self.paths: Counter[tuple[str, str]] = Counter()
        self.places: Counter[tuple[str, str]] = Counter()
        self.rejected = {"baseline": 0, "restricted": 0}
        self.disagreements = 0

    def judge(self, config: dict[str, Any]) -> Judge:
        key = json.dumps(config, sort_keys=True)
        if key not in self.judges:
            self.judges[key] = Judge(self.folder / str(len(self.judges)), config)
        return self.judges[key]

    def pair(self, config: dict[str, Any]) -> tuple[Judge, Judge]:
        """``config`` as it is, and with pod_security enforcing restricted."""
        restricted = {"policies": {"pod_security": {"params": {"enforce": "restricted"}}}}
        return self.judge(config), self.judge(merged(config, restricted))

    def check(self, pods: list[dict[str, Any]], where: str, config: dict[str, Any], mode: str) -> list[str]:
        """Both configurations' decisions on each pod against the oracle's verdicts on its mutated form;
        returns the path pod_security took on each pod ("fast" or "full")."""
        first_judge, second_judge = self.pair(config)
        decisions = [(first_judge.library.decide(pod), second_judge.library.decide(pod)) for pod in pods]
        mutated = [
            jsonpatch.apply_patch(pod, [{k: v for k, v in op.items() if k != "policy"} for op in first["patch"]])
            for pod, (first, _) in zip(pods, decisions, strict=True)
        ]
        judged = [self._judged_part(first_judge, m) for m in mutated]
        paths = ["fast" if first_judge.library.fast_path(m) else "full" for m in mutated]
        problems: list[str] = []
        for m, (first, second), verdict, path in zip(mutated, decisions, oracle(judged), paths, strict=True):
            found = first_judge.disagreements(first, verdict) + second_judge.disagreements(second, verdict)
            if second["patch"] != first["patch"]:
                found.append("enforcing restricted changed the patch")
            self.pods[mode] += 1
            self.paths[mode, path] += 1
            for level in self.rejected:
                self.rejected[level] += not verdict[level]["allowed"]
            if found:
                self.disagreements += 1
                problems.append(f"{where} ({path} path): {'; '.join(found)}\n  M = {json.dumps(m)}")
        assert not problems, f"{REPLAY}\n" + "\n".join(problems)
        return paths

    @staticmethod
    def _judged_part(judge: Judge, mutated: dict[str, Any]) -> dict[str, Any]:
        """What Kubernetes should judge: the pod without the containers an image exemption takes out of
        pod_security's view (Pod Security Admission has no per-image exemption)."""
        if not judge.exempting:
            return mutated
        kept = judge.library.judged_containers(mutated)
        pod = json.loads(json.dumps(mutated))
        for kind in ("initContainers", "containers", "ephemeralContainers"):
            if kind in pod["spec"]:
                pod["spec"][kind] = [c for c in pod["spec"][kind] if c["name"] in kept]
        return pod

    def close(self) -> None:
        for judge in self.judges.values():
            judge.library.close()


def say(request: pytest.FixtureRequest, line: str) -> None:
    """Print past pytest's output capture (the seed must be seen even when the run passes)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


@pytest.fixture(scope="module")
def differential(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Differential]:
    say(request, f"pod_security differential: seed {SEED} ({REPLAY}), {EXAMPLES} generated and {NEAR} near-hardened pods")
    started = time.monotonic()
    diff = Differential(tmp_path_factory.mktemp("pss"))
    yield diff
    diff.close()
    outcome = "0 disagreements" if diff.disagreements == 0 else f"{diff.disagreements} DISAGREEMENTS (failed)"
    paths = ", ".join(f"{mode} {path} {n}" for (mode, path), n in sorted(diff.paths.items()))
    places = ", ".join(f"{place} {n}" for (_, place), n in sorted(diff.places.items()))
    say(
        request,
        f"pod_security differential: {sum(diff.pods.values())} pods ({dict(diff.pods)}), seed {SEED}, {outcome}; "
        f"pod_security's path per pod: {paths}; near-hardened alterations by place: {places}; "
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


# Volume sources restricted allows, then those it forbids.
RESTRICTED_VOLUMES = [
    {"emptyDir": {}},
    {"configMap": {"name": "cfg"}},
    {"secret": {"secretName": "s"}},
    {"projected": {"sources": []}},
    {"downwardAPI": {}},
    {"persistentVolumeClaim": {"claimName": "c"}},
    {"ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}},
    {"image": {"reference": "busybox"}},
    {"csi": {"driver": "x"}},
]
volume_sources = st.sampled_from(
    [
        *RESTRICTED_VOLUMES,
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


# --- near-hardened pods: aimed at the fast path -----------------------------------

RUNTIME_DEFAULT = {"type": "RuntimeDefault"}
LOCALHOST = {"type": "Localhost", "localhostProfile": "profiles/audit.json"}
UNCONFINED = {"type": "Unconfined"}
ABSENT = object()  # an alteration that removes the field


def hardened_context(draw: st.DrawFn, pod_has_non_root: bool, pod_has_seccomp: bool) -> dict[str, Any]:
    """A container securityContext the fast path accepts in a pod with these pod-level fields: the required
    fields, each field it whitelists (sometimes), never one it does not know."""
    context: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    if draw(st.booleans()):
        context["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    if not pod_has_non_root or draw(st.booleans()):
        context["runAsNonRoot"] = True
    if not pod_has_seccomp or draw(st.booleans()):
        context["seccompProfile"] = dict(draw(st.sampled_from([RUNTIME_DEFAULT, LOCALHOST])))
    optional = {
        "runAsUser": st.just(1000),
        "runAsGroup": st.sampled_from([0, 1000]),
        "readOnlyRootFilesystem": st.booleans(),
        "privileged": st.just(False),
        "procMount": st.just("Default"),
        "appArmorProfile": st.sampled_from([RUNTIME_DEFAULT, LOCALHOST]),
    }
    for key, values in optional.items():
        if draw(st.integers(0, 3)) == 0:
            context[key] = draw(values)
    return context


@st.composite
def hardened_pods(draw: st.DrawFn, having: str = "containers") -> dict[str, Any]:
    """A valid Linux pod every check passes and the fast path recognises (checked by the test), with at
    least one container of the kind ``having``."""
    pod_context: dict[str, Any] = {}
    if draw(st.booleans()):
        pod_context["runAsNonRoot"] = True
    if draw(st.booleans()):
        pod_context["seccompProfile"] = dict(draw(st.sampled_from([RUNTIME_DEFAULT, LOCALHOST])))
    for key, value in (("runAsUser", 1000), ("runAsGroup", 1000), ("fsGroup", 1000), ("supplementalGroups", [1000])):
        if draw(st.integers(0, 3)) == 0:
            pod_context[key] = value
    if draw(st.integers(0, 4)) == 0:
        pod_context["appArmorProfile"] = dict(draw(st.sampled_from([RUNTIME_DEFAULT, LOCALHOST])))

    def container(name: str) -> dict[str, Any]:
        context = hardened_context(draw, "runAsNonRoot" in pod_context, "seccompProfile" in pod_context)
        return {"name": name, "image": draw(images), "securityContext": context}

    spec: dict[str, Any] = {
        "containers": [container(n) for n in ["base", *(f"side{i}" for i in range(draw(st.integers(0, 1))))]],
        "restartPolicy": "Never",
    }
    inits = draw(st.integers(1 if having == "initContainers" else 0, 2))
    if inits:
        spec["initContainers"] = [container(f"init{i}") for i in range(inits)]
    if having == "ephemeralContainers" or draw(st.booleans()):
        spec["ephemeralContainers"] = [container("debug")]
    if pod_context:
        spec["securityContext"] = pod_context
    volumes = draw(st.lists(st.sampled_from(RESTRICTED_VOLUMES), max_size=2))
    if volumes:
        spec["volumes"] = [{"name": f"v{i}", **json.loads(json.dumps(v))} for i, v in enumerate(volumes)]
    metadata: dict[str, Any] = {"name": "p", "namespace": "airflow", "labels": {"dag_id": "d"}}
    if draw(st.integers(0, 3)) == 0:
        metadata["annotations"] = {f"{APPARMOR_PREFIX}base": draw(st.sampled_from(["runtime/default", "localhost/profile"]))}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


# What an alteration may set in a container's securityContext: the fields the fast path requires or
# whitelists, each with absent, accepted and rejected values, and fields it does not know.
CONTEXT_ALTERATIONS: dict[str, list[Any]] = {
    "allowPrivilegeEscalation": [ABSENT, True, False],
    "capabilities": [
        ABSENT,
        {},
        {"drop": []},
        {"drop": ["all"]},
        {"drop": ["NET_RAW"]},
        {"drop": ["NET_RAW", "ALL"]},
        {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        {"drop": ["ALL"], "add": ["CHOWN"]},
        {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
        {"add": ["NET_BIND_SERVICE"]},
    ],
    "runAsNonRoot": [ABSENT, True, False],
    "runAsUser": [ABSENT, 0, 1000],
    "runAsGroup": [ABSENT, 0, 1000],
    "seccompProfile": [ABSENT, RUNTIME_DEFAULT, LOCALHOST, UNCONFINED],
    "appArmorProfile": [ABSENT, RUNTIME_DEFAULT, LOCALHOST, UNCONFINED],
    "privileged": [ABSENT, True, False],
    "procMount": [ABSENT, "Default", "Unmasked"],
    "readOnlyRootFilesystem": [ABSENT, True, False],
    "seLinuxOptions": [{"type": "spc_t"}, {"type": "container_t"}, {"user": "system_u"}, {"level": "s0:c1,c2"}],
    "windowsOptions": [{"hostProcess": True}, {"hostProcess": False}],
}
# The same for the pod's securityContext.
POD_CONTEXT_ALTERATIONS: dict[str, list[Any]] = {
    "runAsNonRoot": [ABSENT, True, False],
    "runAsUser": [ABSENT, 0, 1000],
    "seccompProfile": [ABSENT, RUNTIME_DEFAULT, LOCALHOST, UNCONFINED],
    "appArmorProfile": [ABSENT, RUNTIME_DEFAULT, LOCALHOST, UNCONFINED],
    "seLinuxOptions": [{"type": "spc_t"}, {"type": "container_t"}, {"level": "s0:c1,c2"}],
    "sysctls": [[{"name": "net.ipv4.tcp_rmem", "value": "1"}], [{"name": "kernel.msgmax", "value": "1"}]],
    "windowsOptions": [{"hostProcess": True}, {"hostProcess": False}],
    "fsGroup": [ABSENT, 0, 1000],
    "supplementalGroups": [[0], [1000]],
}
# Outside the securityContexts: what a container or the pod spec may gain.
CONTAINER_EXTRAS: dict[str, list[Any]] = {
    "ports": [[{"containerPort": 8080}], [{"containerPort": 8080, "hostPort": 8080}]],
    "livenessProbe": [{"tcpSocket": {"port": 8080}}, {"httpGet": {"port": 8080, "host": "127.0.0.1"}}],
    "lifecycle": [{"preStop": {"httpGet": {"port": 8080}}}, {"preStop": {"tcpSocket": {"port": 8080, "host": "10.0.0.1"}}}],
}
SPEC_ALTERATIONS: dict[str, list[Any]] = {
    "hostNetwork": [True, False],
    "hostPID": [True, False],
    "hostIPC": [True, False],
    "os": [{"name": "linux"}, {"name": "windows"}],
}


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value is ABSENT:
        target.pop(key, None)
    else:
        target[key] = json.loads(json.dumps(value))


@st.composite
def near_hardened_pods(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(hardened pod, the same pod with one field removed or altered, where the alteration landed)."""
    place = draw(st.sampled_from(["pod", "containers", "initContainers", "ephemeralContainers"]))
    base = valid(draw(hardened_pods(having=place)))
    pod = json.loads(json.dumps(base))
    spec = pod["spec"]
    if place == "pod":
        what = draw(st.sampled_from(["context", "context", "context", "whole context", "spec", "volume", "annotation"]))
        context = spec.setdefault("securityContext", {})
        if what == "context":
            key = draw(st.sampled_from(sorted(POD_CONTEXT_ALTERATIONS)))
            _set(context, key, draw(st.sampled_from(POD_CONTEXT_ALTERATIONS[key])))
        elif what == "whole context":
            del spec["securityContext"]
        elif what == "spec":
            key = draw(st.sampled_from(sorted(SPEC_ALTERATIONS)))
            spec[key] = draw(st.sampled_from(SPEC_ALTERATIONS[key]))
        elif what == "volume":
            spec.setdefault("volumes", []).append({"name": "extra", **json.loads(json.dumps(draw(volume_sources)))})
        else:
            key = draw(st.sampled_from([f"{APPARMOR_PREFIX}base", SECCOMP_POD, f"{SECCOMP_PREFIX}base"]))
            kind = "apparmor" if key.startswith(APPARMOR_PREFIX) else "seccomp"
            pod["metadata"].setdefault("annotations", {})[key] = draw(annotation_values[kind])
        if spec.get("securityContext") == {}:
            del spec["securityContext"]
    else:
        container = draw(st.sampled_from(spec[place]))
        context = container.setdefault("securityContext", {})
        what = draw(st.sampled_from(["context"] * 6 + ["whole context", "extra"]))
        if what == "context":
            key = draw(st.sampled_from(sorted(CONTEXT_ALTERATIONS)))
            _set(context, key, draw(st.sampled_from(CONTEXT_ALTERATIONS[key])))
        elif what == "whole context":
            del container["securityContext"]
        elif place != "ephemeralContainers":  # Kubernetes forbids ports, probes and lifecycle there
            key = draw(st.sampled_from(sorted(CONTAINER_EXTRAS)))
            container[key] = draw(st.sampled_from(CONTAINER_EXTRAS[key]))
        if container.get("securityContext") == {}:
            del container["securityContext"]
    return base, valid(pod), place


# Both generators' pods come in batches (the oracle and OPA are asked once per batch), unshrunk: a batch's
# failure names every pod, and the seed replays it.
BATCHES = settings(
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@seed(SEED)
@settings(BATCHES, max_examples=-(-EXAMPLES // BATCH))
@given(batch=st.lists(pods(), min_size=BATCH, max_size=BATCH))
def test_pod_security_agrees_with_kubernetes(differential: Differential, batch: list[dict[str, Any]]) -> None:
    differential.check(batch, "generated pod", {}, "generated")


@seed(SEED)
@settings(BATCHES, max_examples=-(-NEAR // BATCH))
@given(batch=st.lists(near_hardened_pods().filter(lambda t: t[0] != t[1]), min_size=BATCH, max_size=BATCH))
def test_near_hardened_pods_agree_with_kubernetes(
    differential: Differential, batch: list[tuple[dict[str, Any], dict[str, Any], str]]
) -> None:
    bases = [base for base, _, _ in batch]
    fast = differential.check(bases, "hardened base pod", MUTATORS_OFF, "hardened base")
    assert fast == ["fast"] * len(bases), f"the fast path refused a hardened base pod; {REPLAY}"
    differential.check([pod for _, pod, _ in batch], "near-hardened pod", MUTATORS_OFF, "near-hardened")
    differential.places.update(("near-hardened", place) for _, _, place in batch)


@pytest.mark.parametrize(
    "sample", sorted(POLICIES.glob("*/samples/*.yaml.sample")), ids=lambda p: f"{p.parent.parent.name}/{p.name}"
)
def test_every_sample_pod_agrees_with_kubernetes(differential: Differential, sample: Path) -> None:
    """Each sample under its own configuration (its ``config:``), and that with enforce: restricted."""
    document = yaml.safe_load(sample.read_text())
    differential.check([document["pod"]], f"sample {sample.relative_to(REPO)}", document.get("config") or {}, "sample")


def test_every_path_was_reached(differential: Differential) -> None:
    """Runs last: a generator that stops reaching a path (fast or full checks) or a place (pod level, each
    container kind) fails the run, whatever the verdicts were."""
    assert differential.disagreements == 0
    near = differential.pods["near-hardened"]
    assert near >= NEAR, differential.pods
    for path in ("fast", "full"):
        assert differential.paths["near-hardened", path] >= near // 5, differential.paths
    assert differential.paths["generated", "full"] >= EXAMPLES // 2, differential.paths
    for place in ("pod", "containers", "initContainers", "ephemeralContainers"):
        assert differential.places["near-hardened", place] >= near // 20, differential.places
