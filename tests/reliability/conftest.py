"""Fixtures for the reliability suite: fault proxies in front of real OPA processes, the client's probe.

No test here asserts a wall time: what a duration would stand for is observed through the client's own
clock (tests/clientprobe.py) or counted by the fault proxy; the wall times are only recorded as figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_opa_mutation import OpaUnavailable, PodDenied

from ..clientprobe import ClientProbe
from .faultproxy import Fault, FaultProxy
from .figures import FIGURES

LABEL_POLICY = 'decision := {"patch": [{"op": "add", "path": "/metadata/labels/seen", "value": "yes"}]}'


@pytest.fixture
def client_probe(monkeypatch: pytest.MonkeyPatch) -> ClientProbe:
    """The hook's OPA client, observed through its own clock (see tests/clientprobe.py)."""
    return ClientProbe(monkeypatch)


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(upstream_port: int, **kwargs: Any) -> FaultProxy:
        proxy = FaultProxy(upstream_port, **kwargs)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def call_denied(hook: Any, pod: Any, match: str) -> tuple[float, str]:
    """Call the hook on a pod whose decision call fails while OPA answers /health: the pod is to blame,
    PodDenied in both fail modes (issue 13), the pod left exactly as it was. Returns the wall time (for
    the figures) and the text."""
    before = pod.to_dict()
    started = time.monotonic()
    with pytest.raises(PodDenied, match="OPA is healthy but could not decide on this pod") as raised:
        hook(pod)
    elapsed = time.monotonic() - started
    assert match.lower() in str(raised.value).lower(), str(raised.value)
    assert pod.to_dict() == before
    return elapsed, str(raised.value)


def call_failing(
    hook: Any, pod: Any, fail_mode: str, caplog: pytest.LogCaptureFixture, match: str
) -> tuple[float, str]:
    """Call the hook expecting OPA to be unusable: closed raises OpaUnavailable, open logs at ERROR.

    Either way the pod must be left exactly as it was. Returns the wall time (for the figures) and the
    error text.
    """
    before = pod.to_dict()
    caplog.clear()
    started = time.monotonic()
    if fail_mode == "closed":
        with pytest.raises(OpaUnavailable) as raised:
            hook(pod)
        elapsed = time.monotonic() - started
        text = str(raised.value)
    else:
        hook(pod)
        elapsed = time.monotonic() - started
        errors = [
            r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "airflow_opa_mutation"
        ]
        assert errors, "fail_mode=open must log the failure at ERROR"
        assert "fail_mode=open" in errors[0]
        text = errors[0]
    assert match.lower() in text.lower(), text
    assert pod.to_dict() == before
    return elapsed, text


@pytest.fixture
def errors_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures (measured in this run)")
    width = max(len(f"{f.test}: {f.what}") for f in FIGURES)
    for f in FIGURES:
        label = f"{f.test}: {f.what}"
        terminalreporter.write_line(f"{label:<{width}}  {f.value:>10.3f} {f.unit:<6} {f.bound}")


__all__ = ["LABEL_POLICY", "Fault", "call_denied", "call_failing"]
