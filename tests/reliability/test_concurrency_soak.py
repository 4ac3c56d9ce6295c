"""16 threads through one hook and one real OPA: no cross-talk, no lost update, no error.

Default: 16 threads x 1,000 pods. ``AOM_SOAK=1``: 16 x 10,000 (160,000 round trips; minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

from kubernetes import client as k8s

from airflow_opa_mutation import AUDIT_ANNOTATION, MutationHook, Settings

from ..conftest import decision_policy, worker_pod
from .figures import record

ECHO = """
decision := {"patch": [
    {"op": "add", "path": "/metadata/annotations/echo-name", "value": input.pod.metadata.name, "policy": "echo"},
    {"op": "add", "path": "/metadata/annotations/echo-uid", "value": input.request.uid, "policy": "echo"},
    {"op": "add", "path": "/metadata/labels/echo-thread", "value": input.pod.metadata.labels.thread, "policy": "echo"},
]}
"""

THREADS = 16
PER_THREAD = 10_000 if os.environ.get("AOM_SOAK") == "1" else 1_000


def test_threads_times_pods_without_cross_talk(start_opa):
    opa = start_opa(decision_policy(ECHO))
    counts: Counter[str] = Counter()
    counts_lock = threading.Lock()

    def metrics(kind: str, name: str, *args: object, tags: dict[str, str] | None = None) -> None:
        if kind == "incr":
            with counts_lock:
                counts[name] += 1

    hook = MutationHook(Settings(url=opa.url, timeout=10), metrics=metrics)
    failures: list[str] = []
    uids: list[set[str]] = [set() for _ in range(THREADS)]
    start = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        start.wait()
        try:
            for i in range(PER_THREAD):
                name = f"t{t}-pod-{i}"
                pod = worker_pod(name)
                pod.metadata.labels["thread"] = str(t)
                hook(pod)
                notes = pod.metadata.annotations
                audit = json.loads(notes[AUDIT_ANNOTATION])
                if (notes["echo-name"] != name or pod.metadata.labels["echo-thread"] != str(t)
                        or notes["echo-uid"] != audit["request_uid"] or pod.metadata.name != name
                        or not isinstance(pod.spec.containers[0], k8s.V1Container)):
                    failures.append(f"{name}: {notes}")
                    return
                uids[t].add(notes["echo-uid"])
        except Exception as exc:
            failures.append(f"thread {t}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    hook.close()
    total = THREADS * PER_THREAD
    assert not failures, failures[:5]
    all_uids = set().union(*uids)
    assert len(all_uids) == total  # every pod got its own request back: no answer went to another pod
    assert counts["opa_mutation.applied"] == total  # no lost update
    assert counts["opa_mutation.policy"] == total  # the one policy, "echo", once per pod
    assert counts["opa_mutation.errors"] == 0 and counts["opa_mutation.denied"] == 0
    rate = total / elapsed
    print(f"\nconcurrency: {THREADS} threads x {PER_THREAD} pods = {total} round trips in {elapsed:.1f}s "
          f"({rate:.0f} pods/s)")
    record(f"concurrency {THREADS} x {PER_THREAD}", f"{total} round trips, wall time", elapsed)
    record(f"concurrency {THREADS} x {PER_THREAD}", "throughput", rate, unit="pods/s")
