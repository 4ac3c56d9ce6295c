"""The circuit breaker under a KubernetesExecutor-sized burst, and the connection pool across fork()."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_opa_mutation.cli._local_opa import free_port

from ..conftest import decision_policy, worker_pod
from .faultproxy import Fault
from .figures import record

ECHO = """
decision := {"patch": [
    {"op": "add", "path": "/metadata/annotations/echo-name", "value": input.pod.metadata.name},
    {"op": "add", "path": "/metadata/annotations/echo-uid", "value": input.request.uid},
]}
"""


def _burst_against_a_dead_listener(fault_proxy, make_hook, caplog, probe, threads: int) -> tuple[float, int, int]:
    proxy = fault_proxy(free_port(), default=Fault("hang"), hold=20)
    hook = make_hook(proxy.url, timeout=1.0, fail_mode="open")  # default breaker: 5 failures, 30 s
    pods = [worker_pod(f"burst-{i}") for i in range(200)]
    before = [p.to_dict() for p in pods]
    caplog.clear()
    started = time.monotonic()
    if threads == 1:
        for pod in pods:
            hook(pod)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(hook, pods))
    elapsed = time.monotonic() - started
    assert [p.to_dict() for p in pods] == before  # every pod went on unchanged
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 200 and all("fail_mode=open" in e for e in errors)
    fast = sum("circuit breaker open" in e for e in errors)
    # Only the calls the breaker let through made a request and waited, each within its own deadline;
    # it refused the rest before any request: what "fast" stands for, without a stopwatch.
    assert len(probe.calls) == 200 - fast
    for call in probe.calls:
        call.assert_bounded()
    return elapsed, len(proxy.requests()), fast


def test_burst_of_200_pods_fails_open_fast_behind_the_breaker(fault_proxy, make_hook, errors_log, client_probe):
    elapsed, reached, fast = _burst_against_a_dead_listener(fault_proxy, make_hook, errors_log, client_probe, threads=1)
    assert reached == 5  # only the first `breaker_threshold` calls waited on the dead listener
    assert fast == 195
    record("breaker: 200 pods, one thread", "burst wall time (timeout 1 s; 5 reached OPA)", elapsed)


def test_threaded_burst_of_200_pods_behind_the_breaker(fault_proxy, make_hook, errors_log, client_probe):
    elapsed, reached, fast = _burst_against_a_dead_listener(fault_proxy, make_hook, errors_log, client_probe,
                                                            threads=16)
    assert reached <= 16 + 5  # at most the calls in flight before the breaker opened
    assert fast >= 200 - reached
    record("breaker: 200 pods, 16 threads", f"burst wall time (timeout 1 s; {reached} reached OPA)", elapsed)


# -- fork -----------------------------------------------------------------------------------------------


def _child_calls(hook, rounds: int, write_end: int) -> None:
    """In a forked child: use the inherited hook, report through the pipe, never return to pytest."""
    status = 1
    try:
        names = []
        for i in range(rounds):
            pod = worker_pod(f"child-{i}")
            hook(pod)
            names.append(pod.metadata.annotations["echo-name"] == f"child-{i}")
        os.write(write_end, json.dumps({"pid": os.getpid(), "all_echoed": all(names)}).encode())
        status = 0
    except BaseException as exc:
        os.write(write_end, json.dumps({"error": repr(exc)}).encode())
    finally:
        os._exit(status)


def test_pool_built_before_fork_is_not_shared_with_the_child(start_opa, fault_proxy, make_hook):
    opa = start_opa(decision_policy(ECHO))
    proxy = fault_proxy(opa.port)  # forwards to OPA; tells which connection each request came on
    hook = make_hook(proxy.url, audit_annotation=False, timeout=5)
    first = worker_pod("parent-0")
    hook(first)  # the parent's pool now holds a keep-alive connection
    assert first.metadata.annotations["echo-name"] == "parent-0"
    parent_port = proxy.requests()[-1].peer
    rounds = 150
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child_calls(hook, rounds, write_end)
    os.close(write_end)
    # Meanwhile the parent keeps using the same hook: were the socket shared, answers would cross.
    for i in range(rounds):
        pod = worker_pod(f"parent-{i + 1}")
        hook(pod)
        assert pod.metadata.annotations["echo-name"] == f"parent-{i + 1}"
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks))
    assert "error" not in report, report
    assert os.waitstatus_to_exitcode(status) == 0
    assert report["all_echoed"] is True
    assert report["pid"] != os.getpid()
    child_ports = {s.peer for s in proxy.requests() if b'"child-' in s.body}
    parent_ports = {s.peer for s in proxy.requests() if b'"parent-' in s.body}
    assert len([s for s in proxy.requests() if b'"child-' in s.body]) == rounds
    assert parent_ports == {parent_port}  # the parent kept its one keep-alive connection throughout
    assert child_ports and not child_ports & parent_ports  # the child built its own pool: never the parent's socket
    # ...and the parent's original connection still serves the parent.
    after = worker_pod("parent-last")
    hook(after)
    assert after.metadata.annotations["echo-name"] == "parent-last"
    record("fork", f"{rounds} calls in the child + {rounds} in the parent at once", 0, unit="ok")


def _fork_and_call(hook, name: str, seconds: float = 5.0) -> dict:
    """Fork; the child runs ``hook`` on a pod under an alarm and reports through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGALRM, lambda *_: os._exit(3))  # a deadlocked child dies, reported as 3
            signal.setitimer(signal.ITIMER_REAL, seconds)
            pod = worker_pod(name)
            hook(pod)
            os.write(write_end, json.dumps({"echo": pod.metadata.annotations.get("echo-name")}).encode())
            status = 0
        except BaseException as exc:
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code != 3, "the child deadlocked: a lock held by another thread at fork() was inherited locked"
    report = json.loads(b"".join(chunks) or b"{}")
    assert code == 0, report
    return report


@pytest.mark.parametrize("which", ["client", "breaker", "token_file"])
def test_fork_while_another_thread_holds_a_client_lock(start_opa, make_hook, tmp_path, which):
    """Airflow forks task runners from threaded processes: a lock another thread held at that moment
    stays locked forever in the child. The child must still be able to call OPA."""
    opa = start_opa(decision_policy(ECHO))
    token_file = tmp_path / "token"
    token_file.write_text("not-checked")
    hook = make_hook(opa, audit_annotation=False, timeout=2, token_file=str(token_file))
    warm = worker_pod("warm")
    hook(warm)  # builds the parent's pool
    lock = {
        "client": hook.client._lock,
        "breaker": hook.client.breaker._lock,
        "token_file": hook.client.endpoint.token_file._lock,
    }[which]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        if which == "token_file":
            token_file.write_text("changed-so-it-is-re-read")  # the child must take the lock to re-read
        report = _fork_and_call(hook, "forked-child")
    finally:
        release.set()
        holder.join()
    assert report == {"echo": "forked-child"}
