"""The hook against the floor: a raw keep-alive POST of the same bytes to the same OPA decision path.

Run through bench/run, which runs this file in both Python environments (kubernetes 36 classic models
and 37 pydantic models) and merges their rows. One invocation here measures one models generation:

    python bench/bench.py --out rows.json [--short]

Rows: policy set (empty patch / shipped library / 200 generated policies) x pods of 1, 5 and 50
containers. Per row: floor and hook latency (median, p99), their ratio, client CPU per call (thread
time: work, not waiting), OPA's own timers (?metrics=true), throughput single-threaded and with 8
threads, and, for the headline row, RSS growth over many calls.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes
import urllib3

# The floor POSTs the bytes the hook would send: built with the hook's own serializer and Airflow context.
from airflow_opa_mutation import MutationHook, Settings, _json, pod_to_json
from airflow_opa_mutation._airflow_context import airflow_context
from airflow_opa_mutation.cli._local_opa import LocalOpa

REPO = Path(__file__).resolve().parents[1]
DECISION = "/v1/data/airflow/pod/decision"


def worker_pod(containers: int, serial: int = 0) -> object:
    """A KubernetesExecutor worker pod as Airflow builds it: labels, annotations, container ``base``."""
    k8s = kubernetes.client
    labels = {"dag_id": "etl", "task_id": "extract", "run_id": "scheduled__2026-11-25T0000000000-1a2b3c4d5",
              "try_number": "1", "kubernetes_executor": "True", "airflow_version": "3.3.2", "airflow-worker": "42"}
    annotations = {"dag_id": "etl", "task_id": "extract", "run_id": "scheduled__2026-11-25T00:00:00+00:00",
                   "try_number": "1"}
    main = k8s.V1Container(
        name="base", image="apache/airflow:3.3.2",
        args=["airflow", "tasks", "run", "etl", "extract", "scheduled__2026-11-25T00:00:00+00:00", "--local"],
        env=[k8s.V1EnvVar(name="AIRFLOW_IS_K8S_EXECUTOR_POD", value="True"),
             k8s.V1EnvVar(name="AIRFLOW__CORE__EXECUTOR", value="LocalExecutor")],
        resources=k8s.V1ResourceRequirements(requests={"cpu": "500m", "memory": "1Gi"}),
        volume_mounts=[k8s.V1VolumeMount(name="logs", mount_path="/opt/airflow/logs")],
    )
    sidecars = [k8s.V1Container(name=f"side-{i}", image=f"registry.example.com/tools/side:{i}.0",
                                args=["--serve"], resources=k8s.V1ResourceRequirements(requests={"cpu": "50m"}))
                for i in range(1, containers)]
    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name=f"etl-extract-{serial:06d}", namespace="airflow",
                                  labels=labels, annotations=annotations),
        spec=k8s.V1PodSpec(restart_policy="Never", service_account_name="airflow-worker",
                           containers=[main, *sidecars],
                           volumes=[k8s.V1Volume(name="logs", empty_dir=k8s.V1EmptyDirVolumeSource())]),
    )


def generated_policies(folder: Path, count: int) -> None:
    """``count`` policies on the library's framework, each a mutation and a check over every container."""
    for i in range(count):
        (folder / f"gen_{i:03d}.rego").write_text(textwrap.dedent(f"""\
            package airflow.pod.policies.gen_{i:03d}

            defaults := {{"enabled": true, "params": {{"registry": "blocked-{i}.example.com"}}}}

            patch contains {{"op": "add", "path": "/metadata/labels/gen-{i:03d}", "value": "on"}} if {{
                input.airflow.dag_id == "bench_{i:03d}"
            }}

            deny contains msg if {{
                some container in input.pod.spec.containers
                startswith(container.image, "blocked-{i}.example.com/")
                msg := sprintf("container %s uses a blocked registry", [container.name])
            }}
            """))


def policy_sets(scratch: Path) -> dict[str, list[Path]]:
    empty = scratch / "empty"
    empty.mkdir()
    (empty / "decision.rego").write_text('package airflow.pod\n\ndecision := {"patch": []}\n')
    generated = scratch / "generated"
    generated.mkdir()
    generated_policies(generated, 200)
    return {"empty-patch": [empty], "library": [REPO / "policies"],
            "library+200-generated": [REPO / "policies", generated]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_row(opa: LocalOpa, containers: int, iterations: int, threads: int) -> dict[str, object]:
    template = worker_pod(containers)
    doc = pod_to_json(template)
    labels = template.metadata.labels
    body = _json.dumps({"input": {"pod": doc, "airflow": airflow_context(labels, template.metadata.annotations),
                                  "request": {"uid": "bench", "version": "bench", "mode": "enforce"}}})
    pool = urllib3.HTTPConnectionPool("127.0.0.1", opa.port, maxsize=threads, retries=False)
    headers = {"Content-Type": "application/json"}

    def floor_call() -> None:
        response = pool.urlopen("POST", DECISION, body=body, headers=headers)
        _json.loads(response.data)

    hook = MutationHook(Settings(url=opa.url, timeout=10))
    pods = [copy.deepcopy(template) for _ in range(iterations + iterations // 5)]
    warm = iterations // 5
    for _ in range(warm):
        floor_call()
    for pod in pods[:warm]:
        hook(pod)

    floor, floor_cpu, hooked, hook_cpu = [], [], [], []
    for pod in pods[warm:]:  # interleaved, so drift on a noisy machine hits both alike
        c0, t0 = time.thread_time(), time.perf_counter()
        floor_call()
        t1, c1 = time.perf_counter(), time.thread_time()
        hook(pod)
        t2, c2 = time.perf_counter(), time.thread_time()
        floor.append(t1 - t0)
        floor_cpu.append(c1 - c0)
        hooked.append(t2 - t1)
        hook_cpu.append(c2 - c1)

    metrics = []
    for _ in range(min(200, max(10, iterations // 2))):
        response = pool.urlopen("POST", DECISION + "?metrics=true", body=body, headers=headers)
        metrics.append(_json.loads(response.data)["metrics"])

    def throughput(call: object, n: int, workers: int) -> float:
        started = time.perf_counter()
        if workers == 1:
            for i in range(n):
                call(i)  # type: ignore[operator]
        else:
            with ThreadPoolExecutor(workers) as executor:
                list(executor.map(call, range(n)))  # type: ignore[arg-type]
        return n / (time.perf_counter() - started)

    n = max(10, iterations // 2)
    fresh = [copy.deepcopy(template) for _ in range(n)]
    fresh8 = [copy.deepcopy(template) for _ in range(n)]
    row = {
        "containers": containers,
        "iterations": len(hooked),
        "pod_json_bytes": len(_json.dumps(doc)),
        "floor_median_us": statistics.median(floor) * 1e6,
        "floor_p99_us": percentile(floor, 0.99) * 1e6,
        "hook_median_us": statistics.median(hooked) * 1e6,
        "hook_p99_us": percentile(hooked, 0.99) * 1e6,
        "ratio_median": statistics.median(hooked) / statistics.median(floor),
        "floor_cpu_median_us": statistics.median(floor_cpu) * 1e6,
        "hook_cpu_median_us": statistics.median(hook_cpu) * 1e6,
        "hook_cpu_over_floor_us": (statistics.median(hook_cpu) - statistics.median(floor_cpu)) * 1e6,
        "opa_eval_median_us": statistics.median(m["timer_rego_query_eval_ns"] for m in metrics) / 1e3,
        "opa_handler_median_us": statistics.median(m["timer_server_handler_ns"] for m in metrics) / 1e3,
        "hook_pods_per_s_1_thread": throughput(lambda i: hook(fresh[i]), n, 1),
        "hook_pods_per_s_8_threads": throughput(lambda i: hook(fresh8[i]), n, threads),
        "floor_req_per_s_1_thread": throughput(lambda i: floor_call(), n, 1),
    }
    hook.close()
    pool.close()
    return row


def limits_rows(opa: LocalOpa, iterations: int) -> list[dict[str, object]]:
    """Pods at the hook's limits (issue 13) against the default ``timeout`` (2 s): ``max_containers``
    containers, ``max_volumes`` volumes, and a ~1 MB pod of 24,000 volumes with one container (OPA's cost
    when asked; the hook refuses it by ``max_volumes`` before asking). OPA's own evaluation time, and the
    hook's whole call with its outcome (a pod OPA cannot decide on in time is denied, never let through)."""
    settings = Settings(url=opa.url)
    at_limit = worker_pod(settings.max_containers)
    k8s = kubernetes.client

    def with_volumes(count: int) -> kubernetes.client.V1Pod:
        pod = worker_pod(1)
        pod.spec.volumes = [k8s.V1Volume(name=f"v{i}", empty_dir=k8s.V1EmptyDirVolumeSource()) for i in range(count)]
        return pod

    pool = urllib3.HTTPConnectionPool("127.0.0.1", opa.port, maxsize=1, retries=False)
    rows = []
    for name, template in (
        (f"{settings.max_containers} containers", at_limit),
        (f"{settings.max_volumes} volumes", with_volumes(settings.max_volumes)),
        ("24,000 volumes", with_volumes(24_000)),
    ):
        doc = pod_to_json(template)
        request = {"uid": "bench", "version": "bench", "mode": "enforce"}
        body = _json.dumps({"input": {"pod": doc, "airflow": {}, "request": request}})
        headers = {"Content-Type": "application/json"}
        evals = []
        for _ in range(max(3, iterations // 10)):
            response = pool.urlopen("POST", DECISION + "?metrics=true", body=body, headers=headers)
            evals.append(_json.loads(response.data)["metrics"]["timer_server_handler_ns"] / 1e6)
        hook = MutationHook(settings)
        walls, outcome = [], ""
        for _ in range(max(3, iterations // 10)):
            pod = copy.deepcopy(template)
            started = time.perf_counter()
            try:
                hook(pod)
                outcome = "mutated"
            except Exception as exc:  # a bench row records the outcome, whatever it is
                outcome = type(exc).__name__
            walls.append(time.perf_counter() - started)
        hook.close()
        rows.append({"pod": name, "pod_json_bytes": len(_json.dumps(doc)), "timeout_s": settings.timeout,
                     "opa_handler_median_ms": statistics.median(evals),
                     "hook_median_ms": statistics.median(walls) * 1e3, "outcome": outcome})
    pool.close()
    return rows


def rss_growth(opa: LocalOpa, calls: int) -> dict[str, float]:
    """RSS before and after ``calls`` hook calls on fresh pods (built outside, dropped after each call)."""
    hook = MutationHook(Settings(url=opa.url, timeout=10))
    template = worker_pod(1)
    for _ in range(min(2000, calls)):  # warm caches, pools, lazily built tables
        hook(copy.deepcopy(template))
    before = _rss_kb()
    for _ in range(calls):
        hook(copy.deepcopy(template))
    after = _rss_kb()
    hook.close()
    return {"calls": calls, "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
            "rss_growth_mb": (after - before) / 1024}


def _rss_kb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--short", action="store_true", help="seconds, not minutes: keeps the benchmark from rotting")
    parser.add_argument("--rss-calls", type=int, default=100_000)
    args = parser.parse_args()
    iterations = 20 if args.short else 2000
    rss_calls = 500 if args.short else args.rss_calls
    models = "pydantic" if hasattr(kubernetes.client.V1Pod, "model_validate") else "classic"
    generation = f"kubernetes {kubernetes.__version__} ({models})"
    rows = []
    memory: dict[str, float] = {}
    limits: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, paths in policy_sets(Path(scratch)).items():
            with LocalOpa(paths) as opa:
                for containers in (1, 5, 50):
                    row = measure_row(opa, containers, iterations if containers < 50 else iterations // 2, 8)
                    row.update({"policy_set": name, "models": generation})
                    rows.append(row)
                    print(f"{generation:34} {name:22} {containers:>2} containers: hook/floor "
                          f"{row['ratio_median']:.2f} (hook {row['hook_median_us']:.0f} us, floor "
                          f"{row['floor_median_us']:.0f} us, hook CPU {row['hook_cpu_median_us']:.0f} us, "
                          f"OPA eval {row['opa_eval_median_us']:.0f} us)", flush=True)
                if name == "library":
                    limits = limits_rows(opa, iterations)
                    for limit in limits:
                        print(f"{generation:34} at the limits: {limit['pod']} ({limit['pod_json_bytes']} B): OPA "
                              f"{limit['opa_handler_median_ms']:.0f} ms, hook {limit['hook_median_ms']:.0f} ms "
                              f"(timeout {limit['timeout_s']} s): {limit['outcome']}", flush=True)
                    memory = rss_growth(opa, rss_calls)
                    print(f"{generation:34} RSS growth over {rss_calls} calls: {memory['rss_growth_mb']:.2f} MB",
                          flush=True)
    args.out.write_text(json.dumps({"models": generation, "python": sys.version.split()[0], "short": args.short,
                                    "cpus": os.cpu_count(), "threads": threading.active_count(),
                                    "rows": rows, "memory": memory, "limits": limits}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
