"""pod_security against Kubernetes' own Pod Security code (k8s.io/pod-security-admission, tools/k8s-oracle).

Hypothesis generates pods over every field a Pod Security check reads — absent, safe and violating
values, at pod and container level, 1-3 containers, 0-3 initContainers, sometimes an ephemeral
container. For each pod P, the library with its shipped defaults returns a patch; M is P with that
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
profile_types = st.sampled_from(["RuntimeDefault", "Localhost", "Unconfined", ""])


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, str]:
    """A seccomp or AppArmor profile; type "" stands for a profile without a type."""
    kind = draw(profile_types)
    profile = {"type": kind} if kind else {}
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
        {"ephemeral": {}},
        {"image": {"reference": "busybox"}},
        {"csi": {"driver": "x"}},
        {"hostPath": {"path": "/var/log"}},
        {"nfs": {"server": "nfs", "path": "/"}},
        {"gitRepo": {"repository": "https://example.com/r.git"}},
        {"iscsi": {"targetPortal": "t", "iqn": "i", "lun": 0}},
        {},
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
annotation_values = st.sampled_from(
    ["runtime/default", "localhost/profile", "localhost", "unconfined", "", "docker/default"]
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = ["base"] + [f"side{i}" for i in range(draw(st.integers(0, 2)))]
    init_names = [f"init{i}" for i in range(draw(st.integers(0, 3)))]
    spec: dict[str, Any] = {
        "containers": [draw(containers(n)) for n in names],
        "restartPolicy": "Never",
    }
    if init_names:
        spec["initContainers"] = [draw(containers(n)) for n in init_names]
    if draw(st.integers(0, 4)) == 0:
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
                [f"container.apparmor.security.beta.kubernetes.io/{n}" for n in [*names, "ghost"]]
                + ["seccomp.security.alpha.kubernetes.io/pod", "container.seccomp.security.alpha.kubernetes.io/base"]
            ),
            max_size=2,
            unique=True,
        )
    ):
        annotations[key] = draw(annotation_values)
    metadata: dict[str, Any] = {"name": "p", "namespace": "airflow", "labels": {"dag_id": "d"}}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


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
