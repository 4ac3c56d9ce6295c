"""Pod create latency through a real kube-apiserver, with the admission webhooks and without, in one run.

One control plane (etcd + kube-apiserver, tests/kube/cluster.py) and one OPA serving policies/ over TLS
in the compiled form, as the admission OPA's signed bundle is (``bundle build``: the module ``compile``
writes for the shipped configuration, checked in force), with the webhook configurations registered
from ``airflow-opa-mutation admission manifests``' own output
(tests/kube/webhooks.py, as the tests do). Two namespaces: one the webhooks select (its label), one they
do not. The benchmark's worker pod (bench.py, 1 and 50 containers; the shipped library mutates it and
denies nothing) is POSTed as JSON by a keep-alive ``requests`` session as the cluster admin, sequentially
and by 20 concurrent creators (threads, one session each). Every creator alternates the two namespaces,
so whatever else loads the machine hits both columns alike. A sample is the POST's round trip (request
out, 201 and the stored pod in); anything but 201 stops the run. Every pod stored in the selected
namespace must carry the webhook's audit record (layer "admission", naming the policies that changed
it), and none in the other: the "with" column measured the webhook, or the run fails.

OPA's own time on the same pods, for the added-latency budget: the AdmissionReviews of the two webhook
calls (mutate: the pod as stored without the webhook; validate: as stored with it) replayed to
``/v1/data/airflow/pod/admission/{mutate,validate}?metrics=true`` (``timer_rego_query_eval_ns`` and
``timer_server_handler_ns``), and, from OPA's Prometheus ``/metrics``, the mean server time of the
webhook calls the API server really made during each cell.

    python bench/admission_latency.py --out admission.json [--short]

Full: 1,000 samples per namespace per cell at 1 container, 500 at 50 (p99: the 10th and 5th worst); short
(scripts/test's smoke test): 20, checked for completeness and for the webhook's mark, never for values.
The webhooks are registered with ``--timeout-seconds 30``: a saturated OPA (20 creators of 50-container
pods on a busy 2-core machine took it past the default 5 s) is measured, and the samples past 5 s are
counted (``with_over_default_timeout``: the creates the default configuration would have refused).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

# Run as a script: bench/ is on sys.path (bench.py's pod); the repository root gives tests/kube's
# control plane and webhook set-up, so the benchmark registers exactly what the tests prove.
from bench import REPO, worker_pod

sys.path.append(str(REPO))

from airflow_opa_mutation import AUDIT_ANNOTATION, pod_to_json
from airflow_opa_mutation.cli._compiler import compile_library
from airflow_opa_mutation.cli._local_opa import opa_binary
from tests.kube.cluster import ControlPlane
from tests.kube.webhooks import register, selected, serve_tls, unregister, wait_until_judged

WITH, WITHOUT = "bench-webhook", "bench-plain"
CONTAINERS = (1, 50)
CREATORS = (1, 20)
# Registered with the longest timeoutSeconds the API allows, so that a saturated OPA shows up as latency, not
# as refused pods; the samples past the command's default (5 s, where failurePolicy Fail refuses) are counted.
TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS = 30, 5
PLACEHOLDER = "__NAME__"


class BenchError(RuntimeError):
    pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pod_template(containers: int) -> bytes:
    """The worker pod as JSON with a placeholder name, for any namespace (the URL names it)."""
    pod = pod_to_json(worker_pod(containers))
    pod["metadata"].pop("namespace", None)
    pod["metadata"]["name"] = PLACEHOLDER
    return json.dumps(pod).encode()


def audit_record(pod: dict[str, Any]) -> dict[str, Any] | None:
    raw = (pod["metadata"].get("annotations") or {}).get(AUDIT_ANNOTATION)
    return json.loads(raw) if raw else None


def check_stored(namespace: str, pod: dict[str, Any]) -> None:
    """The webhook's mark on every pod of the selected namespace, none elsewhere: fails the run loudly."""
    record = audit_record(pod)
    name = pod["metadata"]["name"]
    if namespace == WITH and not (record and record.get("layer") == "admission" and record.get("policies")):
        raise BenchError(f"{namespace}/{name} was stored without the webhook's mutation (audit record {record})")
    if namespace == WITHOUT and record is not None:
        raise BenchError(f"{namespace}/{name} carries an audit record {record}, but no webhook selects it")


class Creator:
    """One keep-alive session as the cluster admin: what a client (a scheduler, kubectl) pays per create."""

    def __init__(self, kube: ControlPlane) -> None:
        self.url = kube.url
        self.session = requests.Session()
        self.session.trust_env = False  # never a proxy for loopback
        self.session.verify = str(kube.ca_file)
        self.session.headers.update({"Authorization": f"Bearer {kube.token}", "Content-Type": "application/json"})

    def create(self, namespace: str, body: bytes) -> float:
        started = time.perf_counter()
        response = self.session.post(f"{self.url}/api/v1/namespaces/{namespace}/pods", data=body, timeout=60)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise BenchError(f"create in {namespace}: HTTP {response.status_code}: {response.text[:500]}")
        check_stored(namespace, response.json())
        return elapsed

    def close(self) -> None:
        self.session.close()


def run_creator(kube: ControlPlane, template: bytes, tag: str, *, warm: int, count: int,
                samples: dict[str, list[float]], start: threading.Barrier | None = None) -> None:
    """``warm`` unrecorded then ``count`` recorded pairs, the namespace order alternating pair by pair."""
    creator = Creator(kube)
    try:
        if start is not None:
            start.wait()
        for i in range(warm + count):
            order = (WITH, WITHOUT) if i % 2 == 0 else (WITHOUT, WITH)
            for namespace in order:
                body = template.replace(PLACEHOLDER.encode(), f"{tag}-{i}".encode())
                elapsed = creator.create(namespace, body)
                if i >= warm:
                    samples[namespace].append(elapsed)
    finally:
        creator.close()


def opa_server_seconds(opa_url: str, ca_file: Path) -> tuple[float, int]:
    """OPA's Prometheus sum and count of ``/v0/data`` request durations (the webhook calls)."""
    text = requests.get(f"{opa_url}/metrics", verify=str(ca_file), timeout=30).text
    total, count = 0.0, 0
    for line in text.splitlines():
        if 'handler="v0/data"' not in line:
            continue
        if line.startswith("http_request_duration_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("http_request_duration_seconds_count"):
            count += int(float(line.rsplit(" ", 1)[1]))
    return total, count


def clear(kube: ControlPlane) -> None:
    """Delete the cell's pods (never scheduled, so gone at once): every cell starts from the same store."""
    for namespace in (WITH, WITHOUT):
        result = kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods")
        if not result.ok:
            raise BenchError(f"delete pods in {namespace}: {result}")


def measure_cell(kube: ControlPlane, opa_url: str, ca_file: Path, *, containers: int, creators: int,
                 samples_per_namespace: int, short: bool) -> dict[str, Any]:
    template = pod_template(containers)
    samples: dict[str, list[float]] = {WITH: [], WITHOUT: []}
    per_creator = -(-samples_per_namespace // creators)
    warm = 1 if short else max(2, per_creator // 10)  # a pair for the connections, then a tenth
    before = opa_server_seconds(opa_url, ca_file)
    started = time.perf_counter()
    tag = f"c{containers}-t{creators}"
    if creators == 1:
        run_creator(kube, template, tag, warm=warm, count=per_creator, samples=samples)
    else:
        barrier = threading.Barrier(creators)
        errors: list[BaseException] = []

        def creator(index: int) -> None:
            mine: dict[str, list[float]] = {WITH: [], WITHOUT: []}
            try:
                run_creator(kube, template, f"{tag}-{index}", warm=warm, count=per_creator, samples=mine,
                            start=barrier)
            except BaseException as exc:  # re-raised below: one failure fails the run
                errors.append(exc)
                barrier.abort()
            with lock:
                for namespace, values in mine.items():
                    samples[namespace].extend(values)

        lock = threading.Lock()
        threads = [threading.Thread(target=creator, args=(i,)) for i in range(creators)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise BenchError(f"{len(errors)} of {creators} creators failed; first: {errors[0]!r}") from errors[0]
    wall = time.perf_counter() - started
    after = opa_server_seconds(opa_url, ca_file)
    created = (warm + per_creator) * creators
    calls = after[1] - before[1]
    if calls < 2 * created:  # a mutate and a validate call per pod in the selected namespace
        raise BenchError(f"OPA served {calls} webhook calls for {created} pods in {WITH}: the webhook was skipped")
    stored = kube.list_pods(WITH)
    if len(stored) != created:
        raise BenchError(f"{len(stored)} pods stored in {WITH}, {created} created")
    for pod in stored:  # as stored, not only as answered
        check_stored(WITH, pod)
    with_, without = samples[WITH], samples[WITHOUT]
    row = {
        "containers": containers,
        "creators": creators,
        "samples": len(with_),
        "pod_json_bytes": len(template),
        "without_p50_ms": statistics.median(without) * 1e3,
        "without_p99_ms": percentile(without, 0.99) * 1e3,
        "with_p50_ms": statistics.median(with_) * 1e3,
        "with_p99_ms": percentile(with_, 0.99) * 1e3,
        "with_over_default_timeout": sum(1 for value in with_ if value > DEFAULT_TIMEOUT_SECONDS),
        "mutated_pods_checked": len(stored),
        "opa_webhook_calls": calls,
        "opa_server_mean_ms_per_call": (after[0] - before[0]) / calls * 1e3,
        "wall_s": wall,
    }
    row["added_p50_ms"] = row["with_p50_ms"] - row["without_p50_ms"]
    row["added_p99_ms"] = row["with_p99_ms"] - row["without_p99_ms"]
    clear(kube)
    return row


def review(pod: dict[str, Any], namespace: str, uid: str) -> dict[str, Any]:
    """The AdmissionReview the API server sends for a pod CREATE by the admin (apiserver's fields dropped)."""
    pod = copy.deepcopy(pod)
    for key in ("uid", "resourceVersion", "creationTimestamp"):
        pod["metadata"].pop(key, None)
    pod["metadata"]["namespace"] = namespace
    pod.pop("status", None)
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": pod["metadata"]["name"], "namespace": namespace, "operation": "CREATE",
        "userInfo": {"username": "aom-admin", "uid": "aom-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": pod, "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }}


def opa_eval(kube: ControlPlane, opa_url: str, ca_file: Path, containers: int, calls: int) -> dict[str, Any]:
    """OPA's timers for the two webhook calls on this pod, replayed alternately: mutate sees the pod as
    the API server stores it without the webhook, validate as it stores it with the webhook's patch."""
    template = pod_template(containers)
    creator = Creator(kube)
    try:
        for namespace in (WITH, WITHOUT):
            creator.create(namespace, template.replace(PLACEHOLDER.encode(), f"eval-{containers}".encode()))
    finally:
        creator.close()
    plain = kube.get_pod(WITHOUT, f"eval-{containers}").body
    mutated = kube.get_pod(WITH, f"eval-{containers}").body
    clear(kube)
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    bodies = {
        "mutate": json.dumps({"input": review(plain, WITH, "bench-mutate")}).encode(),
        "validate": json.dumps({"input": review(mutated, WITH, "bench-validate")}).encode(),
    }
    timers: dict[str, dict[str, list[float]]] = {k: {"eval": [], "handler": []} for k in bodies}
    answers: dict[str, Any] = {}
    try:
        for i in range(calls + max(2, calls // 10)):
            for which, body in bodies.items():
                response = session.post(f"{opa_url}/v1/data/airflow/pod/admission/{which}?metrics=true",
                                        data=body, headers={"Content-Type": "application/json"}, timeout=60)
                if response.status_code != 200:
                    raise BenchError(f"OPA {which}: HTTP {response.status_code}: {response.text[:500]}")
                answer = response.json()
                answers[which] = answer["result"]["response"]
                if i >= max(2, calls // 10):
                    timers[which]["eval"].append(answer["metrics"]["timer_rego_query_eval_ns"] / 1e6)
                    timers[which]["handler"].append(answer["metrics"]["timer_server_handler_ns"] / 1e6)
    finally:
        session.close()
    # The replay is the webhook's own decision: mutate patches, validate (on the mutated pod) allows.
    if not (answers["mutate"].get("allowed") and answers["mutate"].get("patchType") == "JSONPatch"):
        raise BenchError(f"the replayed mutate review was not patched: {answers['mutate']}")
    if not answers["validate"].get("allowed") or "patch" in answers["validate"]:
        raise BenchError(f"the replayed validate review was not allowed unchanged: {answers['validate']}")
    row: dict[str, Any] = {"containers": containers, "calls": calls}
    for which, timer in timers.items():
        row[f"{which}_eval_p50_ms"] = statistics.median(timer["eval"])
        row[f"{which}_eval_p99_ms"] = percentile(timer["eval"], 0.99)
        row[f"{which}_handler_p50_ms"] = statistics.median(timer["handler"])
    row["eval_p50_ms"] = row["mutate_eval_p50_ms"] + row["validate_eval_p50_ms"]
    row["handler_p50_ms"] = row["mutate_handler_p50_ms"] + row["validate_handler_p50_ms"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--short", action="store_true", help="seconds, not minutes: the smoke test")
    args = parser.parse_args()
    # Full: p99 is the 10th (1 container) or 5th (50 containers) worst sample.
    samples = dict.fromkeys(CONTAINERS, 20) if args.short else {1: 1000, 50: 500}
    eval_calls = 5 if args.short else 300
    began = time.perf_counter()
    load_before = os.getloadavg()  # the machine is shared: what else ran is part of the figures
    rows: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aom-bench-admission-") as scratch, ControlPlane() as kube:
        module = Path(scratch) / "compiled.generated.rego"
        module.write_text(compile_library(REPO / "policies", None, opa=opa_binary(None)).text)
        opa, ca_file = serve_tls(Path(scratch), [REPO / "policies", module])
        try:
            holds = requests.get(f"{opa.url}/v1/data/airflow/pod/lib/compiled/holds", verify=str(ca_file),
                                 timeout=30).json().get("result")
            if holds is not True:
                raise SystemExit("admission_latency: the compiled form is not in force in the webhook's OPA")
            register(kube, opa.url, ca_file, "--timeout-seconds", str(TIMEOUT_SECONDS))
            selected(kube, WITH)
            selected(kube, WITHOUT, labelled=False)
            kube.service_account(WITH, "airflow-worker")  # the worker pod's (no controller creates it)
            kube.service_account(WITHOUT, "airflow-worker")
            wait_until_judged(kube, WITH)
            for containers in CONTAINERS:
                evals.append(opa_eval(kube, opa.url, ca_file, containers, eval_calls))
                for creators in CREATORS:
                    row = measure_cell(kube, opa.url, ca_file, containers=containers, creators=creators,
                                       samples_per_namespace=samples[containers], short=args.short)
                    rows.append(row)
                    print(f"admission: {containers:>2} containers, {creators:>2} creators: p50 "
                          f"{row['without_p50_ms']:.1f} -> {row['with_p50_ms']:.1f} ms, p99 "
                          f"{row['without_p99_ms']:.1f} -> {row['with_p99_ms']:.1f} ms "
                          f"({row['samples']} each, {row['wall_s']:.0f} s)", flush=True)
            unregister(kube)
        finally:
            opa.stop()
        start_seconds = kube.start_seconds
    document = {"short": args.short, "python": sys.version.split()[0], "cpus": os.cpu_count(),
                "load_average_before": load_before, "load_average_after": os.getloadavg(),
                "control_plane_start_s": start_seconds, "total_s": time.perf_counter() - began,
                "rows": rows, "opa_eval": evals}
    args.out.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
