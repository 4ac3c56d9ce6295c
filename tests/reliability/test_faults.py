"""OPA failing in every way a sidecar fails, against real OPA processes (and a fault proxy in front).

Every fault runs in both fail modes: ``closed`` raises a typed ``OpaUnavailable``, ``open`` logs at
ERROR and lets the pod through; either way ``pod.to_dict()`` is exactly what it was. ``timeout`` bounds
the whole call, retries included: each failing call is timed against ``timeout + SLACK``.
"""

from __future__ import annotations

import threading
import time

import pytest

from airflow_opa_mutation.cli._local_opa import free_port

from ..conftest import decision_policy, worker_pod
from .conftest import LABEL_POLICY, SLACK, call_denied, call_failing, health_probe
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


def bounded(elapsed: float, timeout: float = TIMEOUT) -> None:
    """A failing call takes at most ``timeout``, plus the health probe that follows it."""
    bound = timeout + health_probe(timeout)
    assert elapsed <= bound + SLACK, f"the call took {elapsed:.3f}s, more than {bound}s + {SLACK}s"


# -- nothing there -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_opa_not_running(make_hook, pod, errors_log, fail_mode):
    hook = make_hook(f"http://127.0.0.1:{free_port()}", timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, "cannot connect to OPA")
    assert "refused" in text.lower()
    bounded(elapsed)
    record("not running", f"refused, retried to the deadline ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_listener_resets_every_connection(start_opa, make_hook, fault_proxy, pod, errors_log, fail_mode):
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port, default=Fault("close"))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, "attempts")
    assert len(proxy.requests()) >= 2  # a dropped connection is retried...
    bounded(elapsed)  # ...within the one deadline
    record("connection reset", f"{len(proxy.requests())} attempts ({fail_mode})", elapsed)


# -- OPA dying and coming back -------------------------------------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_opa_killed_then_restarted_on_the_same_port(start_opa, make_hook, errors_log, fail_mode):
    opa = start_opa(decision_policy(LABEL_POLICY))
    hook = make_hook(opa, timeout=TIMEOUT, fail_mode=fail_mode)
    first = worker_pod("first")
    hook(first)  # a keep-alive connection now sits in the pool
    assert first.metadata.labels["seen"] == "yes"
    opa.kill()
    down = worker_pod("while-down")
    elapsed, _ = call_failing(hook, down, fail_mode, errors_log, "cannot connect to OPA")
    bounded(elapsed)
    opa.start()  # same port, same hook: the stale pooled connection must not matter
    started = time.monotonic()
    hook(down)
    recovered = time.monotonic() - started
    assert down.metadata.labels["seen"] == "yes"
    record("SIGKILL then restart", f"failing call while down ({fail_mode})", elapsed)
    record("SIGKILL then restart", f"first call after restart, same hook ({fail_mode})", recovered)


@pytest.mark.parametrize("fail_mode", MODES)
def test_opa_killed_while_request_in_flight(start_opa, make_hook, fault_proxy, errors_log, fail_mode):
    slow = fault_proxy(free_port(), default=Fault("hang"), hold=10)  # what the slow policy waits on
    opa = start_opa(slow_policy(slow.port, 5))
    timeout = 1.5
    hook = make_hook(opa, timeout=timeout, fail_mode=fail_mode)
    pod = worker_pod("slow-pod")
    killed_at: list[float] = []

    def kill_soon() -> None:
        deadline = time.monotonic() + 5
        while not slow.requests("/slow") and time.monotonic() < deadline:  # OPA is evaluating our pod
            time.sleep(0.01)
        time.sleep(0.2)
        opa.kill()
        killed_at.append(time.monotonic())

    killer = threading.Thread(target=kill_soon)
    killer.start()
    started = time.monotonic()
    elapsed, _text = call_failing(hook, pod, fail_mode, errors_log, "OPA")
    killer.join()
    assert killed_at and killed_at[0] - started < timeout, "OPA was killed while the request was in flight"
    bounded(elapsed, timeout)
    opa.start()
    ok = worker_pod("fast-pod")
    hook(ok)
    assert ok.metadata.labels["seen"] == "yes"
    record("SIGKILL in flight", f"killed at +{killed_at[0] - started:.2f}s, call failed ({fail_mode}, timeout {timeout})",
           elapsed)


# -- OPA (or what is in front of it) not answering in time ---------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_listener_that_never_answers(fault_proxy, make_hook, pod, errors_log, fail_mode):
    proxy = fault_proxy(free_port(), default=Fault("hang"))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, f"did not answer within timeout = {TIMEOUT}s")
    assert elapsed >= TIMEOUT - 0.05
    bounded(elapsed)
    record("never answers", f"accept, no answer ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_slow_policy(start_opa, fault_proxy, make_hook, errors_log, fail_mode):
    slow = fault_proxy(free_port(), default=Fault("hang"), hold=10)
    opa = start_opa(slow_policy(slow.port, 3))
    hook = make_hook(opa, timeout=TIMEOUT, fail_mode=fail_mode)
    pod = worker_pod("slow-pod")
    # OPA itself answers /health at once: the pod made it slow, so it is denied in both modes (issue 13)
    elapsed, _ = call_denied(hook, pod, "within timeout")
    bounded(elapsed)
    fast = worker_pod("fast-pod")  # the same hook, the same OPA, still usable for a quick policy
    hook(fast)
    assert fast.metadata.labels["seen"] == "yes"
    record("slow policy (3 s)", f"call failed ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_trickling_answer_is_bounded_by_the_deadline(start_opa, fault_proxy, make_hook, pod, errors_log, fail_mode):
    """OPA's answer arrives one byte every 50 ms: no single read times out, the deadline still must."""
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port, default=Fault("trickle", delay=0.05))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, f"within timeout = {TIMEOUT}s")
    bounded(elapsed)
    record("trickling answer (1 B / 50 ms)", f"call failed ({fail_mode}, timeout {TIMEOUT})", elapsed)


def test_delay_within_timeout_succeeds(start_opa, fault_proxy, make_hook, pod):
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port, default=Fault("forward", delay=0.4))
    hook = make_hook(proxy.url, timeout=1.0)
    started = time.monotonic()
    hook(pod)
    elapsed = time.monotonic() - started
    assert pod.metadata.labels["seen"] == "yes"
    assert 0.4 <= elapsed <= 1.0
    record("delay 0.4 s", "succeeds (timeout 1.0)", elapsed)


# -- HTTP errors: retried within one deadline ----------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_twice_then_ok_succeeds(start_opa, fault_proxy, make_hook, pod, status):
    proxy = fault_proxy(start_opa(decision_policy(LABEL_POLICY)).port)
    proxy.plan([Fault("status", status=status), Fault("html", status=status)])
    hook = make_hook(proxy.url, timeout=TIMEOUT)
    started = time.monotonic()
    hook(pod)
    elapsed = time.monotonic() - started
    assert pod.metadata.labels["seen"] == "yes"
    assert [s.fault for s in proxy.requests()] == ["status", "html", "forward"]
    assert elapsed <= TIMEOUT
    record(f"HTTP {status} x2 then OK", "succeeds on the 3rd attempt", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_forever_fails_within_timeout(start_opa, fault_proxy, make_hook, pod, errors_log, fail_mode, status):
    proxy = fault_proxy(free_port(), default=Fault("status", status=status))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, f"HTTP {status}")
    attempts = len(proxy.requests())
    assert attempts >= 3 and f"after {attempts} attempts" in text
    bounded(elapsed)
    record(f"HTTP {status} forever", f"{attempts} attempts then fails ({fail_mode}, timeout {TIMEOUT})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_html_error_page(fault_proxy, make_hook, pod, errors_log, fail_mode):
    proxy = fault_proxy(free_port(), default=Fault("html", status=502))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, "HTTP 502: <html>")
    assert "502 Bad Gateway" in text
    bounded(elapsed)
    # An HTML page with status 200 (a captive portal, a misrouted ingress) is simply not JSON.
    proxy200 = fault_proxy(free_port(), default=Fault("html", status=200))
    hook200 = make_hook(proxy200.url, timeout=TIMEOUT, fail_mode=fail_mode)
    fast, _ = call_failing(hook200, pod, fail_mode, errors_log, "not JSON: '<html>")
    assert len(proxy200.requests()) == 1  # not retried: the answer will not change
    record("HTML error page", f"502 retried to the deadline ({fail_mode})", elapsed)
    record("HTML page with 200", f"fails at once ({fail_mode})", fast)


# -- broken bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_mode", MODES)
def test_truncated_body(start_opa, fault_proxy, make_hook, pod, errors_log, fail_mode):
    opa = start_opa(decision_policy(LABEL_POLICY))
    proxy = fault_proxy(opa.port, default=Fault("truncated"))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    # The proxy cuts answers after 20 bytes; OPA's /health answer is shorter and gets through whole, so
    # OPA counts as healthy and the pod is blamed (in both modes).
    elapsed, _ = call_denied(hook, pod, "broke off")
    bounded(elapsed)
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
def test_huge_declared_length_is_refused_without_reading_it(fault_proxy, make_hook, pod, errors_log, fail_mode):
    """A 1 GB Content-Length is refused from the headers: nothing of the body is waited for or read."""
    proxy = fault_proxy(free_port(), default=Fault("big", size=1000, declared=1 << 30))
    hook = make_hook(proxy.url, timeout=TIMEOUT, fail_mode=fail_mode)
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, f"{1 << 30} bytes exceeds max_response_bytes")
    assert len(proxy.requests()) == 1
    assert elapsed < TIMEOUT / 2, f"{elapsed:.3f}s: the oversized body was waited for"
    record("Content-Length 1 GB, body stalls", f"refused from the headers ({fail_mode})", elapsed)


@pytest.mark.parametrize("fail_mode", MODES)
def test_unasked_gzip_bomb_is_capped_by_max_response_bytes(fault_proxy, make_hook, pod, errors_log, fail_mode):
    """1 GB of JSON in ~1 MB of gzip: the cap counts what the body inflates to, not what travelled."""
    proxy = fault_proxy(free_port(), default=Fault("gzip", size=1 << 30))
    hook = make_hook(proxy.url, timeout=5, fail_mode=fail_mode)  # default max_response_bytes: 8 MiB
    elapsed, _ = call_failing(hook, pod, fail_mode, errors_log, "exceeds max_response_bytes = 8388608")
    assert len(proxy.requests()) == 1
    assert elapsed < 2
    record("gzip bomb (1 GB inflated)", f"refused at the 8 MiB cap ({fail_mode})", elapsed)
