"""OPA failing in every way a sidecar fails, against real OPA processes (and a fault proxy in front).

Every fault runs in both fail modes: ``closed`` raises a typed ``OpaUnavailable``, ``open`` logs at
ERROR and lets the pod through; either way ``pod.to_dict()`` is exactly what it was. ``timeout`` bounds
the whole call, retries included: each failing call is checked through the client's own clock
(tests/clientprobe.py: every attempt under the one deadline, every socket timeout and back-off within
it, the health probe under its own), never with a stopwatch; wall times are only recorded as figures.
"""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest

from airflow_opa_mutation.cli._local_opa import free_port

from ..clientprobe import ClientProbe, Record
from ..conftest import decision_policy, worker_pod
from .conftest import LABEL_POLICY, call_denied, call_failing
from .faultproxy import Fault
from .figures import record

MODES = ["closed", "open"]
TIMEOUT = 0.5


def slow_policy(slow_port: int, seconds: int) -> dict[str, str]:
    """A policy that takes ``seconds`` for pods named ``slow-*`` (an http.send OPA must wait for)."""
    return decision_policy(f"""
        decision := {{"patch": [{{"op": "add", "path": "/metadata/labels/seen", "value": "yes"}}]}} if {{
            not startswith(input.pod.metadata.name, "slow")
        }}
        decision := {{"patch": [{{"op": "add", "path": "/metadata/labels/slow", "value": format_int(r.status_code, 10)}}]}} if {{
            startswith(input.pod.metadata.name, "slow")
            r := http.send({{"method": "get", "url": "http://127.0.0.1:{slow_port}/slow", "timeout": "{seconds}s",
                             "raise_error": false, "force_cache": false, "cache": false}})
        }}
    """)


def bounded(probe: ClientProbe) -> Record:
    """The last decision call ran under its one deadline (``timeout`` from its start), and each health
    probe after it under its own: what "takes at most timeout plus the health probe" stands for."""
    call = probe.decision()
    call.assert_bounded()
    for health in probe.health:
        health.assert_bounded()
    return call


def retried_to_the_deadline(probe: ClientProbe) -> Record:
    """Bounded, retried, and given up only when no further attempt could end before the deadline."""
    call = bounded(probe)
    assert call.attempts >= 2, f"{call.attempts} attempt: a transient failure is retried"
    call.assert_gave_up_at_the_deadline()
    return call


# -- nothing there -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_opa_not_running(make_hook, pod, errors_log, client_probe, fail_mode):
    hook = make_hook(f"http://127.0.0.1:{free_port()}", timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, "cannot connect to OPA")
    assert "refused" in text.lower()
    retried_to_the_deadline(client_probe)
    record("not running", f"refused, retried to the deadline ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_listener_resets_every_connection(start_opa, make_hook, fault_proxy, pod, errors_log, client_probe,
                                          fail_mode):
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port, default=Fault("close"))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, "attempts")
    assert len(proxy.requests()) >= 2  # a dropped connection is retried...
    retried_to_the_deadline(client_probe)  # ...within the one deadline
    record("connection reset", f"{len(proxy.requests())} attempts ({fail_mode})", elapsed)


# -- OPA dying and coming back -------------------------------------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_opa_killed_then_restarted_on_the_same_port(start_opa, make_hook, errors_log, client_probe, fail_mode):
    opa = start_opa(decision_policy(LABEL_POLICY))
    hook = make_hook(opa, timeout=TIMEOUT, fail_mode=fail_mode)
    first = worker_pod("first")
    hook(first)  # a keep-alive connection now sits in the pool
    assert first.metadata.labels["seen"] == "yes"
    opa.kill()
    down = worker_pod("while-down")
    elapsed, _ = call_failing(hook, down, fail_mode, errors_log, "cannot connect to OPA")
    retried_to_the_deadline(client_probe)
    opa.start()  # same port, same hook: the stale pooled connection must not matter
    started = time.monotonic()
    hook(down)
    recovered = time.monotonic() - started
    assert down.metadata.labels["seen"] == "yes"
    record("SIGKILL then restart", f"failing call while down ({fail_mode})", elapsed)
    record("SIGKILL then restart", f"first call after restart, same hook ({fail_mode})", recovered)


@pytest.mark.parametrize("fail_mode", MODES)
def test_opa_killed_while_request_in_flight(start_opa, make_hook, fault_proxy, errors_log, client_probe, fail_mode):
    slow = fault_proxy(free_port(), default=Fault("hang"), hold=10)  # what the slow policy waits on
    opa = start_opa(slow_policy(slow.port, 10))
    timeout = 3.0
    hook = make_hook(opa, timeout=timeout, fail_mode=fail_mode)
    pod = worker_pod("slow-pod")
    in_flight: list[bool] = []

    def kill_when_evaluating() -> None:
        for _ in range(500):  # OPA is evaluating our pod once its http.send reaches the slow listener
            if slow.requests("/slow"):
                break
            time.sleep(0.01)
        calls = client_probe.calls
        # The request is in flight while its exchange's guard is armed: not answered, not cut yet.
        in_flight.append(bool(calls and calls[-1].guards and calls[-1].guards[0].armed))
        opa.kill()

    killer = threading.Thread(target=kill_when_evaluating)
    killer.start()
    elapsed, _text = call_failing(hook, pod, fail_mode, errors_log, "OPA")
    killer.join()
    assert in_flight == [True], "OPA was killed while the request was in flight"
    call = retried_to_the_deadline(client_probe)
    assert not call.guards[0].fired  # the first attempt ended with OPA, not at the deadline
    opa.start()
    ok = worker_pod("fast-pod")
    hook(ok)
    assert ok.metadata.labels["seen"] == "yes"
    record("SIGKILL in flight", f"call failed ({fail_mode}, timeout {timeout})", elapsed)


# -- OPA (or what is in front of it) not answering in time ---------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_listener_that_never_answers(fault_proxy, make_hook, pod, errors_log, client_probe, fail_mode):
    proxy = fault_proxy(free_port(), default=Fault("hang"))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, f"did not answer within timeout = {TIMEOUT}s")
    call = bounded(client_probe)
    # The one attempt waited for its answer up to the deadline: no time was left for another.
    assert call.attempts == 1 and len(proxy.requests()) == 1
    call.assert_gave_up_at_the_deadline()
    record("never answers", f"accept, no answer ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_slow_policy(start_opa, fault_proxy, make_hook, errors_log, client_probe, fail_mode):
    slow = fault_proxy(free_port(), default=Fault("hang"), hold=10)
    opa = start_opa(slow_policy(slow.port, 3))
    hook = make_hook(opa, timeout=TIMEOUT, fail_mode=fail_mode)
    pod = worker_pod("slow-pod")
    # OPA itself answers /health at once: the pod made it slow, so it is denied in both modes (issue 13)
    elapsed, _ = call_denied(hook, pod, "within timeout")
    call = bounded(client_probe)
    assert call.attempts == 1
    call.assert_gave_up_at_the_deadline()
    fast = worker_pod("fast-pod")  # the same hook, the same OPA, still usable for a quick policy
    hook(fast)
    assert fast.metadata.labels["seen"] == "yes"
    record("slow policy (3 s)", f"call failed ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_trickling_answer_is_bounded_by_the_deadline(start_opa, fault_proxy, make_hook, pod, errors_log,
                                                     client_probe, fail_mode):
    """OPA's answer arrives one byte every 50 ms: no single read times out, the deadline still must."""
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port, default=Fault("trickle", delay=0.05))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, f"within timeout = {TIMEOUT}s")
    call = bounded(client_probe)
    assert call.guards[0].fired  # only the watchdog can end a read that never waits 50 ms for a byte
    record("trickling answer (1 B / 50 ms)", f"call failed ({fail_mode}, timeout {TIMEOUT})", elapsed)


def test_delay_within_timeout_succeeds(start_opa, fault_proxy, make_hook, pod, client_probe):
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port, default=Fault("forward", delay=0.4))
    hook = make_hook(proxy.url, timeout=1.0)
    started = time.monotonic()
    hook(pod)
    elapsed = time.monotonic() - started
    assert pod.metadata.labels["seen"] == "yes"
    call = bounded(client_probe)  # the slow answer was waited for: one attempt, nothing cut, no retry
    assert call.attempts == 1 and not call.fired and not call.sleeps and len(proxy.requests()) == 1
    record("delay 0.4 s", "succeeds (timeout 1.0)", elapsed)


# -- HTTP errors: retried within one deadline ----------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_twice_then_ok_succeeds(start_opa, fault_proxy, make_hook, pod, client_probe, status):
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port)
    proxy.plan([Fault("status", status=status), Fault("html", status=status)])
    hook = make_hook(proxy.url, timeout=TIMEOUT)
    started = time.monotonic()
    hook(pod)
    elapsed = time.monotonic() - started
    assert pod.metadata.labels["seen"] == "yes"
    assert [s.fault for s in proxy.requests()] == ["status", "html", "forward"]
    call = bounded(client_probe)  # three attempts and two back-offs, all within the one deadline
    assert call.attempts == 3 and len(call.sleeps) == 2 and not call.fired
    record(f"HTTP {status} x2 then OK", "succeeds on the 3rd attempt", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_forever_fails_within_timeout(start_opa, fault_proxy, make_hook, pod, errors_log, client_probe, fail_mode,
                                          status):
    proxy = fault_proxy(free_port(), default=Fault("status", status=status))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, f"HTTP {status}")
    attempts = len(proxy.requests())
    assert attempts >= 3 and f"after {attempts} attempts" in text
    assert retried_to_the_deadline(client_probe).attempts == attempts
    record(f"HTTP {status} forever", f"{attempts} attempts then fails ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_html_error_page(fault_proxy, make_hook, pod, errors_log, client_probe, fail_mode):
    proxy = fault_proxy(free_port(), default=Fault("html", status=502))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, "HTTP 502: <html>")
    assert "502 Bad Gateway" in text
    retried_to_the_deadline(client_probe)
    # An HTML page with status 200 (a captive portal, a misrouted ingress) is simply not JSON.
    proxy200 = fault_proxy(free_port(), default=Fault("html", status=200))
    hook200 = make_hook(proxy200.url, timeout=TIMEOUT, fail_mode=fail_mode)
    fast, _ = call_failing(hook200, pod, fail_mode, errors_log, "not JSON: '<html>")
    assert len(proxy200.requests()) == 1  # not retried: the answer will not change
    assert client_probe.decision().attempts == 1 and not client_probe.decision().sleeps
    record("HTML error page", f"502 retried to the deadline ({fail_mode})", elapsed)
    record("HTML page with 200", f"fails at once ({fail_mode})", fast)


# -- broken bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_truncated_body(start_opa, fault_proxy, make_hook, pod, errors_log, client_probe, fail_mode):
    opa = start_opa(decision_policy(LABEL_POLICY))
    proxy = fault_proxy(opa.port, default=Fault("truncated"))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    # The proxy cuts answers after 20 bytes; OPA's /health answer is shorter and gets through whole, so
    # OPA counts as healthy and the pod is blamed (in both modes).
    elapsed, _ = call_denied(hook, pod, "broke off")
    retried_to_the_deadline(client_probe)
    # Truncated once, then whole: the broken answer is retried like a dropped connection.
    once = fault_proxy(opa.port).plan([Fault("truncated")])
    good = worker_pod("truncated-once")
    make_hook(once.url, timeout=TIMEOUT, fail_mode=fail_mode)(good)
    assert good.metadata.labels["seen"] == "yes"
    record("truncated body", f"always: fails ({fail_mode})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"OK, evaluated your pod", "not JSON: 'OK, evaluated your pod'"),
        (b"", "not JSON: ''"),
        (b'\xff\xfe{"result": {}}', "not JSON"),  # not UTF-8
        (b'{"result": {"patch": [1, 2,', "not JSON"),  # a complete answer that is broken JSON
        (b'{"result": NaN}', "not JSON"),
    ],
    ids=["text", "empty", "not-utf8", "broken-json", "nan"],
)
def test_non_json_body(fault_proxy, make_hook, pod, errors_log, fail_mode, body, needle):
    proxy = fault_proxy(free_port(), default=Fault("nonjson", body=body))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, needle)
    assert len(proxy.requests()) == 1  # not retried: the same OPA gives the same answer
    record("non-JSON 200 body", f"{body[:12]!r} fails at once ({fail_mode})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
@pytest.mark.parametrize("status", [400, 404, 307, 429])
def test_other_statuses_are_not_retried(fault_proxy, make_hook, pod, errors_log, fail_mode, status):
    proxy = fault_proxy(free_port(), default=Fault("status", status=status))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, f"HTTP {status}")
    assert len(proxy.requests()) == 1
    assert "injected" in text  # the body's message is passed on
    record(f"HTTP {status}", f"fails at once, 1 request ({fail_mode})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_response_larger_than_max_response_bytes(fault_proxy, make_hook, pod, errors_log, fail_mode, chunked):
    limit = 100_000
    proxy = fault_proxy(free_port(), default=Fault("big", size=limit * 20, chunked=chunked))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode, max_response_bytes=limit)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, f"exceeds max_response_bytes = {limit}")
    assert len(proxy.requests()) == 1  # not retried
    fits = fault_proxy(free_port(), default=Fault("big", size=limit - 100, chunked=chunked))
    before = pod.to_dict()
    make_hook(fits.url, timeout=TIMEOUT, fail_mode=fail_mode, max_response_bytes=limit)(pod)  # {"result": {}}
    assert pod.to_dict() == before
    record("response > max_response_bytes", f"{'chunked' if chunked else 'content-length'} ({fail_mode})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_huge_declared_length_is_refused_without_reading_it(fault_proxy, make_hook, pod, errors_log, client_probe,
                                                            fail_mode):
    """A 1 GB Content-Length is refused from the headers: nothing of the body is waited for or read."""
    proxy = fault_proxy(free_port(), default=Fault("big", size=1000, declared=1 << 30))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, f"{1 << 30} bytes exceeds max_response_bytes")
    assert len(proxy.requests()) == 1
    call = client_probe.decision()
    # The proxy holds the line after the headers: a read of the body would have waited for the deadline.
    assert call.attempts == 1 and not call.fired and not call.sleeps
    record("Content-Length 1 GB, body stalls", f"refused from the headers ({fail_mode})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_unasked_gzip_bomb_is_capped_by_max_response_bytes(fault_proxy, make_hook, pod, errors_log, fail_mode):
    """1 GB of JSON in ~1 MB of gzip: the cap counts what the body inflates to, not what travelled."""
    proxy = fault_proxy(free_port(), default=Fault("gzip", size=1 << 30))
    hook = make_hook(proxy.url, timeout=5, fail_mode=fail_mode)  # default max_response_bytes: 8 MiB
    tracemalloc.start()
    try:
        elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, "exceeds max_response_bytes = 8388608")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(proxy.requests()) == 1
    assert peak < 64 << 20, f"{peak >> 20} MiB held: more was inflated than the cap lets through"
    record("gzip bomb (1 GB inflated)", f"refused at the 8 MiB cap ({fail_mode})", elapsed)
