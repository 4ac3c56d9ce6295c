"""The compiled form decides exactly as the dynamic form (issue 27, "Equal decisions").

Two real OPA servers serve the library (policies/): the *dynamic* one as it is, the *compiled* one with
the module ``compile_library`` generates for the configuration in force (``PUT /v1/policies``; each new
configuration replaces it). Both get the same configuration (``PUT /v1/data/airflow/pod/config``) and the
same request bytes, and must answer with the same **response bytes**: the raw HTTP bodies of
``POST /v1/data/airflow/pod/decision`` and of the admission entry points (``POST /v0/data/airflow/pod/
admission/mutate`` and ``.../validate``, as the API server calls them), and of
``GET /v1/data/airflow/pod/lib/config/effective`` per configuration. OPA writes objects and sets with
sorted keys, so equal documents are equal bytes; nothing is parsed or normalised before comparing.
Each configuration also checks that the compiled server took the compiled path
(``data.airflow.pod.lib.compiled.holds`` true there, false on the dynamic one): else the test proves
nothing.

Inputs: every policy sample under its own configuration; the pod_security differential's generated,
hardened and near-hardened pods (tests/test_pod_security_differential.py); the image-reference
differential's references (tests/test_image_reference_differential.py) as container images; and
``AOM_COMPILED_CONFIGS`` (default 30) random valid configurations x ``AOM_COMPILED_PODS`` (default 170)
pods each: random enabled flags, parameters of each policy's schema type (from the samples' values, the
defaults, or drawn from the type), global and per-policy exemptions with owner fields. Configurations
with a mistake are refused by compile, naming the key. A compiled module left in place under another
configuration must give the dynamic form's decisions (``holds`` false). Finally the library's Rego tests
pass in the compiled form, as many as without it.

The seed is printed; ``AOM_COMPILED_SEED=<seed>`` replays a run (configurations and pods).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import resource
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from airflow_opa_mutation.cli._compiler import Compiled, CompileError, compile_library
from airflow_opa_mutation.cli._local_opa import LocalOpa, opa_binary
from airflow_opa_mutation.cli.verify import discover

from . import test_image_reference_differential as image_refs
from . import test_pod_security_differential as pss

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
SEED = int(os.environ.get("AOM_COMPILED_SEED") or random.SystemRandom().randrange(2**32))
REPLAY = f"replay with AOM_COMPILED_SEED={SEED}"
CONFIGS = int(os.environ.get("AOM_COMPILED_CONFIGS", "30"))
PODS = int(os.environ.get("AOM_COMPILED_PODS", "170"))
SAMPLES = discover(POLICIES)
SCHEDULER = "system:serviceaccount:airflow:airflow-scheduler"
GENERATED_ID = "compiled.generated.rego"  # the module's id on the compiled server


def full(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with both keys policies/data.yaml sets: the document the compiler sees (data.yaml's empty
    ``exempt`` and ``policies`` merged with the file), so the one put into the servers is that document."""
    return {"exempt": {}, "policies": {}, **copy.deepcopy(config)}


class Forms:
    """The dynamic and the compiled server, and the comparisons made so far."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.opa = opa_binary()
        self.dynamic = LocalOpa([POLICIES]).start()
        self.compiled = LocalOpa([POLICIES]).start()
        self.session = requests.Session()
        self.session.trust_env = False
        self.sessions = {id(self.dynamic): requests.Session(), id(self.compiled): requests.Session()}
        for session in self.sessions.values():
            session.trust_env = False
        self.pool = ThreadPoolExecutor(2)  # both servers at once: one request each, same bytes
        self.compared: Counter[str] = Counter()
        self.reached: Counter[str] = Counter()  # what the decisions compared held (the dynamic answer's)
        self.last: tuple[int, bytes] = (0, b"")
        self.configurations = 0
        self.compile_seconds = 0.0

    # --- configuration --------------------------------------------------------------------------

    def compile(self, config: dict[str, Any]) -> Compiled:
        """The generated module for ``config`` (a data file, as ``compile`` takes it)."""
        path = self.folder / f"config-{self.configurations}.json"
        path.write_text(json.dumps({"airflow": {"pod": {"config": config}}}))
        started = time.monotonic()
        try:
            return compile_library(POLICIES, path, opa=self.opa)
        finally:
            self.compile_seconds += time.monotonic() - started

    def put_config(self, config: dict[str, Any]) -> None:
        body = json.dumps(config)
        for server in (self.dynamic, self.compiled):
            response = self.session.put(f"{server.url}/v1/data/airflow/pod/config", data=body, timeout=30)
            assert response.status_code == 204, response.text

    def put_module(self, compiled: Compiled) -> None:
        """The generated module on the compiled server (replacing the last one)."""
        response = self.session.put(
            f"{self.compiled.url}/v1/policies/{GENERATED_ID}",
            data=compiled.text.encode(),
            headers={"Content-Type": "text/plain"},
            timeout=60,
        )
        assert response.status_code == 200, response.text

    def holds(self, server: LocalOpa) -> Any:
        response = self.session.get(f"{server.url}/v1/data/airflow/pod/lib/compiled/holds", timeout=30)
        response.raise_for_status()
        return response.json().get("result")

    def use(self, config: dict[str, Any]) -> Compiled:
        """Compile ``config``, load module and configuration, and check the compiled path is taken."""
        config = full(config)
        compiled = self.compile(config)
        self.put_module(compiled)
        self.put_config(config)
        self.configurations += 1
        assert self.holds(self.compiled) is True, f"the compiled server does not use the compiled values\n{REPLAY}"
        assert self.holds(self.dynamic) is False
        return compiled

    # --- comparisons ----------------------------------------------------------------------------

    def _answer(self, server: LocalOpa, path: str, body: bytes | None) -> tuple[int, bytes]:
        session = self.sessions[id(server)]
        if body is None:
            response = session.get(f"{server.url}{path}", timeout=60)
        else:
            response = session.post(
                f"{server.url}{path}", data=body, headers={"Content-Type": "application/json"}, timeout=60
            )
        return response.status_code, response.content

    def compare(self, kind: str, path: str, document: Any, where: str, config: dict[str, Any]) -> str | None:
        """The raw answers of both servers to the same request bytes; a description of any difference."""
        body = None if document is None else json.dumps(document).encode()
        asked = self.pool.submit(self._answer, self.dynamic, path, body)
        compiled = self._answer(self.compiled, path, body)
        dynamic = asked.result()
        self.last = dynamic
        self.compared[kind] += 1
        if dynamic[0] != 200:
            self.compared[f"{kind} (HTTP {dynamic[0]} on both)"] += dynamic == compiled
        if dynamic == compiled:
            return None
        return (
            f"{where}: {kind} differs ({path})\n  config: {json.dumps(config)}\n"
            f"  request: {body.decode() if body else 'GET'}\n"
            f"  dynamic  (HTTP {dynamic[0]}): {dynamic[1].decode(errors='replace')}\n"
            f"  compiled (HTTP {compiled[0]}): {compiled[1].decode(errors='replace')}"
        )

    def decisions(
        self, cases: list[tuple[dict[str, Any], dict[str, Any]]], where: str, config: dict[str, Any]
    ) -> list[str]:
        """Compare the decision on each (pod, airflow), and the configuration as it is in force."""
        problems = [self.compare("effective", "/v1/data/airflow/pod/lib/config/effective", None, where, config)]
        for i, (pod, airflow) in enumerate(cases):
            document = {"input": {"pod": pod, "airflow": airflow}}
            problems.append(
                self.compare("decision", "/v1/data/airflow/pod/decision", document, f"{where} pod {i}", config)
            )
            self.tally(json.loads(self.last[1]).get("result", {}))
        return [p for p in problems if p]

    def tally(self, decision: dict[str, Any]) -> None:
        """Count what a decision holds, so that a generator whose decisions are all alike (everything
        exempted, nothing enabled) shows."""
        self.reached["decisions"] += 1
        for key in ("patch", "deny", "warn"):
            self.reached[key] += bool(decision.get(key))
        for kind in ("deny", "warn"):
            self.reached[f"framework {kind}"] += any(e["policy"] == "framework" for e in decision.get(kind, []))
        scopes = {"policy" if "policy" in e else "global" for e in decision.get("exemptions", [])}
        for scope in scopes:
            self.reached[f"{scope} exemption applied"] += 1

    def admission(self, reviews: list[dict[str, Any]], where: str, config: dict[str, Any]) -> list[str]:
        problems = []
        for i, review in enumerate(reviews):
            for entry in ("mutate", "validate"):
                path = f"/v0/data/airflow/pod/admission/{entry}"
                problems.append(self.compare(f"admission {entry}", path, review, f"{where} review {i}", config))
        return [p for p in problems if p]

    def cpu_seconds(self) -> float:
        """CPU time both OPA servers used so far (user + system, from /proc)."""
        total = 0
        for server in (self.dynamic, self.compiled):
            assert server.process is not None
            fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
        return total / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.pool.shutdown()
        for session in (self.session, *self.sessions.values()):
            session.close()
        self.dynamic.stop()
        self.compiled.stop()


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Forms]:
    pss.say(request, f"compiled form: seed {SEED} ({REPLAY}), {CONFIGS} random configurations x {PODS} pods")
    started = time.monotonic()
    both = Forms(tmp_path_factory.mktemp("compiled"))
    yield both
    opa_cpu = both.cpu_seconds()
    python_cpu = resource.getrusage(resource.RUSAGE_SELF)
    both.close()
    pss.say(
        request,
        f"compiled form: seed {SEED}; {both.configurations} configurations compiled and loaded "
        f"({both.compile_seconds:.0f} s compiling); byte-identical answers: {dict(sorted(both.compared.items()))}; "
        f"{time.monotonic() - started:.0f} s wall, CPU: the two OPA servers {opa_cpu:.0f} s, this process "
        f"{python_cpu.ru_utime + python_cpu.ru_stime:.0f} s",
    )


def assert_none(problems: list[str]) -> None:
    assert not problems, f"{REPLAY}; {len(problems)} differences between the forms:\n" + "\n".join(problems[:5])


# --- AdmissionReviews ---------------------------------------------------------------------------------


def review(
    resource: tuple[str, str, str], operation: str, obj: dict[str, Any], user: str, old: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An AdmissionReview as kube-apiserver v1.34 sends it (policies/lib/admission_test.rego)."""
    group, plural, sub = resource
    request: dict[str, Any] = {
        "uid": "6f2d0c1e-0000-4000-8000-000000000001",
        "kind": {"group": group, "version": "v1", "kind": obj.get("kind", "Pod")},
        "resource": {"group": group, "version": "v1", "resource": plural},
        "namespace": obj.get("metadata", {}).get("namespace") or "airflow",
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": obj,
        "dryRun": False,
    }
    if sub:
        request["subResource"] = sub
    if old is not None:
        request["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def reviews_of(pod: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """A pod's CREATE, an UPDATE swapping an image, its debug UPDATE, and a Job and a Deployment of it."""
    user = rng.choice([SCHEDULER, "aom-admin"])
    template = {"metadata": {k: v for k, v in pod.get("metadata", {}).items() if k in ("labels", "annotations")}}
    template["spec"] = pod.get("spec", {})
    updated = copy.deepcopy(pod)
    if updated.get("spec", {}).get("containers"):
        updated["spec"]["containers"][0]["image"] = "registry.example.com/other:2"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": template}}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": template},
    }
    return [
        review(("", "pods", ""), "CREATE", pod, user),
        review(("", "pods", ""), "UPDATE", updated, user, old=pod),
        review(("", "pods", "ephemeralcontainers"), "UPDATE", pod, user, old=pod),
        review(("batch", "jobs", ""), "CREATE", job, user),
        review(("apps", "deployments", ""), "CREATE", deployment, user),
    ]


# --- drawing pods from the differentials' strategies ----------------------------------------------------


def drawn(strategy: st.SearchStrategy[Any], count: int, run: int, batch: int = 10) -> list[Any]:
    """``count`` examples of ``strategy``, reproducible from ``run`` (batches, unshrunk, as the differentials
    draw them)."""
    out: list[Any] = []

    @seed(run)
    @settings(
        database=None,
        deadline=None,
        phases=[Phase.generate],
        max_examples=-(-count // batch),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(st.lists(strategy, min_size=batch, max_size=batch))
    def collect(examples: list[Any]) -> None:
        out.extend(examples)

    collect()
    assert len(out) >= count, f"drew {len(out)} of {count}; {REPLAY}"
    return out[:count]


# --- the samples ---------------------------------------------------------------------------------------


def test_samples_decide_alike(forms: Forms) -> None:
    """Every sample under its own configuration: decision and admission answers, byte for byte."""
    by_config: dict[str, list[Any]] = {}
    for sample in SAMPLES:
        by_config.setdefault(json.dumps(sample.config, sort_keys=True), []).append(sample)
    rng = random.Random(SEED)
    problems: list[str] = []
    for key, samples in by_config.items():
        config = full(json.loads(key))
        forms.use(config)
        cases = [(s.document["pod"], s.document.get("airflow") or {}) for s in samples]
        problems += forms.decisions(cases, f"samples {[s.path.name for s in samples]}", config)
        for i, sample in enumerate(samples):
            reviews = reviews_of(sample.document["pod"], rng)
            problems += forms.admission(reviews if i == 0 else reviews[:1], f"sample {sample.name}", config)
    assert_none(problems)
    assert len(SAMPLES) >= 70 and forms.compared["decision"] >= len(SAMPLES)


# --- the pod_security differential's pods ---------------------------------------------------------------

PSS_GENERATED = 200
PSS_NEAR = 100


def test_pod_security_differential_pods_decide_alike(forms: Forms) -> None:
    """Generated, hardened and near-hardened pods, under the shipped configuration and under the near-hardened
    run's (mutators off) with enforce restricted."""
    generated = drawn(pss.pods(), PSS_GENERATED, SEED)
    near = drawn(pss.near_hardened_pods().filter(lambda t: t[0] != t[1]), PSS_NEAR, SEED)
    pods = generated + [base for base, _, _ in near] + [altered for _, altered, _ in near]
    cases = [(pod, {}) for pod in pods]
    restricted = {"policies": {**pss.MUTATORS_OFF, "pod_security": {"params": {"enforce": "restricted"}}}}
    problems: list[str] = []
    for delta in ({}, restricted):
        config = full(delta)
        forms.use(config)
        problems += forms.decisions(cases, "pod_security differential pods", config)
        problems += forms.admission(
            [review(("", "pods", ""), "CREATE", p, SCHEDULER) for p in pods[:40]], "pss", config
        )
    assert_none(problems)


# --- the image-reference differential's references -------------------------------------------------------

IMAGE_CONFIG = {
    "policies": {
        "allowed_registries": {
            "enabled": True,
            "params": {
                "registries": ["registry.example.com", "docker.io/apache", "localhost:5000"],
                "exempt_images": ["quay.io/*"],
            },
        },
        "image_registry_mirror": {
            "enabled": True,
            "params": {
                "mirrors": {"docker.io": "registry.example.com/dockerhub", "quay.io": "registry.example.com/quay"}
            },
        },
        "image_tag": {"params": {"action": "deny", "forbidden_tags": ["latest", "main", "v1"]}},
        "image_pull_policy": {"enabled": True, "params": {"override": True}},
        "pod_security": {"params": {"exempt_images": ["registry.example.com/debug/*"]}},
        "deny_privileged": {"params": {"exempt_images": ["x@sha256:" + "0" * 64]}},
    }
}


def image_pods(refs: list[str], per_pod: int = 6) -> list[dict[str, Any]]:
    """The references as the images of pods: a container ``base``, others and init containers."""
    pods = []
    for at in range(0, len(refs), per_pod):
        chunk = refs[at : at + per_pod]
        containers = [{"name": "base" if i == 0 else f"c{i}", "image": ref} for i, ref in enumerate(chunk[:3])]
        spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Never"}
        if chunk[3:]:
            spec["initContainers"] = [{"name": f"init{i}", "image": ref} for i, ref in enumerate(chunk[3:])]
        pods.append(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "airflow"}, "spec": spec}
        )
    return pods


def test_image_reference_pods_decide_alike(forms: Forms) -> None:
    refs = image_refs.generate(SEED)
    assert len(refs) >= image_refs.MIN_REFERENCES
    pods = image_pods(refs)
    config = full(IMAGE_CONFIG)
    forms.use(config)
    problems = forms.decisions([(pod, {}) for pod in pods], "image-reference pods", config)
    problems += forms.admission([review(("", "pods", ""), "CREATE", p, SCHEDULER) for p in pods[:40]], "images", config)
    assert_none(problems)


# --- random configurations --------------------------------------------------------------------------------

GLOBS = {
    "namespace": ["airflow", "team-*", "team-a", "kube-system", "*", "{airflow,team-b}"],
    "dag_id": ["etl_daily", "etl_*", "ml.*", "reports", "*", "k8s_launch"],
    "task_id": ["load_*", "fit_model", "run_*", "*", "extract"],
    "launcher": ["kubernetes_executor", "kubernetes_pod_operator", "unknown", "kubernetes_*"],
}
LABEL_GLOBS = {"team": ["data-eng", "ml", "*"], "dag_id": ["etl_*", "d", "*"], "tier": ["critical"]}
ANNOTATION_GLOBS = {"example.com/owner": ["ml-infra", "*"], "dag_id": ["etl_daily", "ml.*"]}
# Past, far future, a date-time with an offset: nothing near now, so both servers judge them alike.
EXPIRES = ["2020-01-01", "2099-12-31", "2099-01-01T00:00:00Z", "2021-06-30T12:00:00+02:00"]
STRINGS = ["", "x", "airflow", "latest", "docker.io", "registry.example.com/*", "*", "/var/log", "Always", "restricted"]


def matcher(rng: random.Random) -> dict[str, Any]:
    """An exemption: a few conditions of lib/match.rego, sometimes owner fields (lib/exemptions.rego)."""
    found: dict[str, Any] = {key: rng.choice(GLOBS[key]) for key in rng.sample(sorted(GLOBS), rng.randint(0, 2))}
    for key, globs in (("labels", LABEL_GLOBS), ("annotations", ANNOTATION_GLOBS)):
        if rng.random() < 0.2:
            keys = rng.sample(sorted(globs), rng.randint(1, 2))
            found[key] = {k: rng.choice(globs[k]) for k in keys}
    if not found and rng.random() < 0.8:  # now and then none: an exemption the framework warns about
        found["namespace"] = rng.choice(GLOBS["namespace"])
    if rng.random() < 0.3:
        found["reason"] = rng.choice(["log shipping", "vendor agent", "x" * 200])
    if rng.random() < 0.2:
        found["ticket"] = rng.choice(["SEC-1234", "https://tracker.example.com/5"])
    if rng.random() < 0.3:
        found["expires"] = rng.choice(EXPIRES)
    return found


def exemptions(rng: random.Random, most: int) -> dict[str, Any]:
    named: dict[str, Any] = {f"ex{i}": matcher(rng) for i in range(rng.randint(1, most))}
    if rng.random() < 0.1:
        named["dropped"] = None  # a null drops a named exemption (here: one no default has)
    return named


def random_value(kind: str, rng: random.Random, depth: int = 0) -> Any:
    """A value of a schema type (lib/config.rego's type language)."""
    if kind.endswith("[]"):
        inner = kind[:-2].strip("()")
        return [random_value(inner, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    base = rng.choice(kind.split("|"))
    if base == "boolean":
        return rng.random() < 0.5
    if base == "string":
        return rng.choice(STRINGS)
    if base == "number":
        return rng.choice([0, 1, -3, 2.5, 1000, 0.1])
    if base == "null":
        return None
    if base == "array":
        return [random_value("string|number|boolean", rng, depth + 1) for _ in range(rng.randint(0, 2))]
    if base == "object":
        if depth > 1:
            return {}
        keys = rng.sample(
            ["cpu", "memory", "name", "x", "docker.io", "etl_*", "runAsNonRoot", "match"], rng.randint(0, 3)
        )
        return {k: random_value(rng.choice(["string", "boolean", "object"]), rng, depth + 1) for k in keys}
    raise AssertionError(f"unknown schema type {kind!r}")


class Space:
    """What random configurations are drawn from: each policy's defaults and schema (OPA's answers on the
    library), and the parameter values the samples use."""

    def __init__(self, forms: Forms) -> None:
        query = (
            '{name: [p.defaults, object.get(p, "schema", {})] | some name; '
            "p := data.airflow.pod.policies[name]; p.defaults}"
        )
        url = f"{forms.dynamic.url}/v1/query"
        answer = forms.session.post(url, json={"query": f"x := {query}"}, timeout=60).json()
        found = answer["result"][0]["x"]
        self.names = sorted(found)
        self.schemas: dict[str, dict[str, str]] = {n: found[n][1] for n in self.names}
        self.pools: dict[tuple[str, str], list[Any]] = {}
        for name in self.names:
            for key, value in found[name][0].get("params", {}).items():
                self.pools.setdefault((name, key), []).append(value)
        for sample in SAMPLES:
            for name, delta in sample.config.get("policies", {}).items():
                for key, value in (delta.get("params") or {}).items():
                    self.pools.setdefault((name, key), []).append(value)

    def configuration(self, rng: random.Random) -> dict[str, Any]:
        policies: dict[str, Any] = {}
        for name in self.names:
            if rng.random() < 0.3:
                continue
            delta: dict[str, Any] = {}
            if rng.random() < 0.7:
                delta["enabled"] = rng.random() < 0.6
            params = {}
            for key, kind in sorted(self.schemas[name].items()):
                if rng.random() < 0.35:
                    pool = self.pools.get((name, key), [])
                    use_pool = pool and rng.random() < 0.7
                    params[key] = copy.deepcopy(rng.choice(pool)) if use_pool else random_value(kind, rng)
            if params or rng.random() < 0.1:
                delta["params"] = params
            if rng.random() < 0.2:
                delta["exempt"] = exemptions(rng, 2)
            policies[name] = delta
        config: dict[str, Any] = {"exempt": exemptions(rng, 2) if rng.random() < 0.25 else {}, "policies": policies}
        if rng.random() < 0.3:
            config["admission"] = {"trusted_requesters": [{"username": SCHEDULER}]}
        return config


# (Airflow context, labels that state it): the samples' contexts and a few more.
CONTEXTS: list[dict[str, Any]] = [
    {"launcher": "unknown"},
    {"dag_id": "etl_daily", "task_id": "load_1", "launcher": "kubernetes_executor", "untrusted": ["dag_id"]},
    {
        "dag_id": "k8s_launch",
        "task_id": "run_job",
        "run_id": "r",
        "try_number": 1,
        "map_index": -1,
        "launcher": "kubernetes_executor",
    },
    {"dag_id": "reports", "task_id": "extract", "launcher": "kubernetes_pod_operator"},
]
NAMESPACES = ["airflow", "team-a", "team-b", "kube-system"]
SERVICE_ACCOUNTS = ["airflow-worker", "airflow-scheduler", "default", "ml-runner", "release-airflow-webserver"]


def dress(
    pod: dict[str, Any], rng: random.Random, refs: list[str], contexts: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pod given an Airflow task's metadata and context, and now and then other images, resources, env,
    service account and host paths: what the policies and exemptions look at."""
    pod = copy.deepcopy(pod)
    airflow = copy.deepcopy(rng.choice(contexts))
    metadata = pod.setdefault("metadata", {})
    metadata["namespace"] = rng.choice(NAMESPACES)
    labels = metadata.setdefault("labels", {})
    for key in ("dag_id", "task_id"):
        if key in airflow and rng.random() < 0.7:
            labels[key] = re.sub(r"[^A-Za-z0-9_.-]", "-", str(airflow[key]))
    if airflow.get("launcher", "unknown") != "unknown":
        labels[airflow["launcher"]] = "True"
    if rng.random() < 0.3:
        labels["team"] = rng.choice(["data-eng", "ml"])
    if rng.random() < 0.2:
        metadata.setdefault("annotations", {})["example.com/owner"] = "ml-infra"
    spec = pod.setdefault("spec", {})
    every = [*spec.get("initContainers", []), *spec.get("containers", [])]
    for container in every:
        if rng.random() < 0.25:
            container["image"] = rng.choice(refs)
        if rng.random() < 0.2:
            container["resources"] = rng.choice(
                [
                    {"requests": {"cpu": "100m"}},
                    {"limits": {"memory": "2Gi", "cpu": "4"}, "requests": {"memory": "1Gi"}},
                ]
            )
        if rng.random() < 0.1:
            container["env"] = [
                {"name": rng.choice(["AIRFLOW_HOME", "AIRFLOW__OPA_MUTATION__URL", "HTTP_PROXY"]), "value": "x"}
            ]
    if rng.random() < 0.4:
        spec["serviceAccountName"] = rng.choice(SERVICE_ACCOUNTS)
    if rng.random() < 0.2:
        spec["automountServiceAccountToken"] = rng.random() < 0.5
    if rng.random() < 0.1:
        spec.setdefault("volumes", []).append(
            {"name": "logs", "hostPath": {"path": rng.choice(["/var/log/airflow/tasks", "/etc"])}}
        )
    return pod, airflow


def test_random_configurations_decide_alike(forms: Forms, request: pytest.FixtureRequest) -> None:
    """``CONFIGS`` random valid configurations, ``PODS`` pods each: the samples' pods and the pod_security
    differential's generated pods, dressed as Airflow tasks of random contexts."""
    space = Space(forms)
    rng = random.Random(SEED)
    refs = image_refs.generate(SEED)[:400]
    generated = drawn(pss.pods(), CONFIGS * PODS // 2, SEED)
    bases = [(s.document["pod"], s.document.get("airflow") or {}) for s in SAMPLES]
    contexts = CONTEXTS + [airflow for _, airflow in bases if airflow]
    started = time.monotonic()
    pods = enabled = 0
    problems: list[str] = []
    before = forms.reached.copy()
    for i in range(CONFIGS):
        config = space.configuration(rng)
        compiled = forms.use(config)
        enabled += len(compiled.enabled)
        cases = []
        for _ in range(PODS):
            source = generated.pop() if generated and rng.random() < 0.6 else rng.choice(bases)[0]
            cases.append(dress(source, rng, refs, contexts))
        pods += len(cases)
        problems += forms.decisions(cases, f"random configuration {i}", full(config))
        reviews = [r for pod, _ in cases[:2] for r in reviews_of(pod, rng)]
        problems += forms.admission(reviews, f"random configuration {i}", full(config))
        assert_none(problems)
    reached = forms.reached - before
    pss.say(
        request,
        f"random configurations: {CONFIGS} configurations ({enabled / max(CONFIGS, 1):.1f} policies enabled on "
        f"average), {pods} pods, seed {SEED}, {time.monotonic() - started:.0f} s; decisions with: {dict(reached)}",
    )
    assert pods >= 5_000 or os.environ.get("AOM_COMPILED_PODS"), "fewer than 5,000 pods: raise CONFIGS or PODS"
    # The decisions compared were of every kind: patches, denies, warnings, exemptions of both scopes that
    # applied, the framework's own findings (an exemption without conditions, an expired one).
    for what in ("patch", "deny", "warn", "global exemption applied", "policy exemption applied"):
        assert reached[what] >= pods // 50, f"few decisions with {what}: {dict(reached)}; {REPLAY}"
    assert reached["framework warn"] > 0, f"{dict(reached)}; {REPLAY}"


# --- configurations compile refuses ---------------------------------------------------------------------


def _pick(config: dict[str, Any], space: Space, rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    """A policy (and one of its parameters, of schema type ``kind`` when given)."""
    choices = [(n, k) for n in space.names for k, t in sorted(space.schemas[n].items()) if kind in (None, t)]
    return rng.choice(choices)


FAULTS: dict[str, Callable[[dict[str, Any], Space, random.Random], str]] = {}


def fault(function: Callable[[dict[str, Any], Space, random.Random], str]) -> Callable[..., str]:
    FAULTS[function.__name__] = function
    return function


@fault
def unknown_parameter(config: dict[str, Any], space: Space, rng: random.Random) -> str:
    name, _ = _pick(config, space, rng)
    config["policies"].setdefault(name, {}).setdefault("params", {})["no_such_parameter"] = 1
    return f"policies.{name}.params.no_such_parameter"


@fault
def mistyped_parameter(config: dict[str, Any], space: Space, rng: random.Random) -> str:
    name, key = _pick(config, space, rng, "boolean")
    config["policies"].setdefault(name, {}).setdefault("params", {})[key] = "yes"
    return f"policies.{name}.params.{key}"


@fault
def unknown_policy(config: dict[str, Any], space: Space, rng: random.Random) -> str:
    config["policies"]["no_such_policy"] = {"enabled": True}
    return "policies.no_such_policy"


@fault
def enabled_not_boolean(config: dict[str, Any], space: Space, rng: random.Random) -> str:
    name = rng.choice(space.names)
    config["policies"].setdefault(name, {})["enabled"] = "true"
    return f"policies.{name}.enabled"


@fault
def unknown_matcher_key(config: dict[str, Any], space: Space, rng: random.Random) -> str:
    config["exempt"]["typo"] = {"namespaces": "airflow"}
    return "exempt.typo.namespaces"


@fault
def malformed_expiry(config: dict[str, Any], space: Space, rng: random.Random) -> str:
    name = rng.choice(space.names)
    config["policies"].setdefault(name, {}).setdefault("exempt", {})["late"] = {"namespace": "x", "expires": "soon"}
    return f"policies.{name}.exempt.late.expires"


@fault
def unknown_top_key(config: dict[str, Any], space: Space, rng: random.Random) -> str:
    config["polices"] = {}
    return "polices"


def test_refused_configurations_name_the_key(forms: Forms) -> None:
    """Each kind of mistake, in random configurations: compile refuses, naming the key, and generates
    nothing."""
    space = Space(forms)
    rng = random.Random(SEED + 1)
    for name, inject in sorted(FAULTS.items()):
        for _ in range(2):
            config = full(space.configuration(rng))
            key = inject(config, space, rng)
            with pytest.raises(CompileError) as refused:
                forms.compile(config)
            assert f"configuration error: {key}:" in str(refused.value), f"{name}: {refused.value}\n{REPLAY}"


# --- a compiled module under another configuration -------------------------------------------------------


def test_stale_module_falls_back_to_the_dynamic_form(forms: Forms) -> None:
    """The module compiled for one configuration, loaded while another is in force (not recompiled):
    ``holds`` is false and every decision is the dynamic form's."""
    space = Space(forms)
    rng = random.Random(SEED + 2)
    bases = [(s.document["pod"], s.document.get("airflow") or {}) for s in SAMPLES]
    problems: list[str] = []
    pairs = [
        ({}, space.configuration(rng)),
        (space.configuration(rng), {}),
        (space.configuration(rng), space.configuration(rng)),
    ]
    for compiled_for, other in pairs:
        forms.use(compiled_for)
        in_force = full(other)
        assert in_force != full(compiled_for)
        forms.put_config(in_force)
        assert forms.holds(forms.compiled) is False, f"a stale module still holds\n{REPLAY}"
        problems += forms.decisions(bases, "stale module", in_force)
        problems += forms.admission([r for pod, _ in bases[:3] for r in reviews_of(pod, rng)], "stale module", in_force)
    assert_none(problems)


# --- the library's Rego tests in the compiled form ---------------------------------------------------------


def _opa_test(opa: str, *paths: Path) -> tuple[int, list[str]]:
    """``opa test`` over ``paths``: the number of passing tests, and the names of the others."""
    done = subprocess.run(
        [opa, "test", "--format", "json", *map(str, paths)], capture_output=True, text=True, timeout=900, check=False
    )
    results = json.loads(done.stdout)
    failed = [f"{r['package']}.{r['name']}" for r in results if r.get("fail") or r.get("error") or r.get("skip")]
    return len(results) - len(failed), failed


def test_rego_tests_pass_in_the_compiled_form(tmp_path: Path) -> None:
    """``opa test policies <generated module>`` for the shipped configuration: all pass, as many as
    without the module (whose ``holds`` is true there for every test that keeps the shipped configuration)."""
    opa = opa_binary()
    module = tmp_path / GENERATED_ID
    module.write_text(compile_library(POLICIES, None, opa=opa).text)
    holds = subprocess.run(
        [
            opa,
            "eval",
            "--format",
            "raw",
            "--data",
            str(POLICIES),
            "--data",
            str(module),
            "data.airflow.pod.lib.compiled.holds",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert holds.stdout.strip() == "true", "the generated module is not in force for the shipped configuration"
    dynamic, dynamic_failed = _opa_test(opa, POLICIES)
    compiled, compiled_failed = _opa_test(opa, POLICIES, module)
    assert dynamic_failed == [] and compiled_failed == [], compiled_failed
    assert compiled == dynamic > 300
