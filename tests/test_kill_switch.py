"""``mode = off``, the kill switch (issue 25, item 13): the hook leaves every pod alone, never asks OPA,
counts nothing and says so once, so that an incident needs a configuration change, not an image rebuild."""

from __future__ import annotations

import json
import logging
import time

import pytest

from airflow_opa_mutation import MutationHook, PodDenied, Settings
from airflow_opa_mutation._pod_codec import encode

from .conftest import decision_policy, worker_pod

#: Denies every pod and would label it: whatever the hook did with this decision would show.
DENY_AND_PATCH = decision_policy(
    'decision := {"deny": ["every pod is denied"], '
    '"patch": [{"op": "add", "path": "/metadata/labels/touched", "value": "yes"}]}'
)


def decisions_logged(opa, at_least: int, timeout: float = 10.0) -> list[dict]:
    """OPA's console decision log entries, once at least ``at_least`` are there (it writes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [json.loads(line) for line in opa.logs().splitlines() if '"decision_id"' in line]
        entries = [entry for entry in entries if entry.get("msg") == "Decision Log"]
        if len(entries) >= at_least or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_mode_off_leaves_pods_alone_asks_nothing_counts_nothing_and_logs_once(start_opa, hook_log):
    opa = start_opa(DENY_AND_PATCH, args=["--set=decision_logs.console=true"])
    emitted: list[tuple] = []
    hook = MutationHook(Settings(url=opa.url, mode="off"), metrics=lambda *call, **tags: emitted.append(call))
    pods = [worker_pod(f"pod-{i}") for i in range(3)]
    before = [encode(pod) for pod in pods]
    for pod in pods:
        hook(pod)  # OPA would deny each one
    hook.close()
    assert [encode(pod) for pod in pods] == before
    assert emitted == []
    lines = [r for r in hook_log.records if r.name == "airflow_opa_mutation"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING
    assert "mode=off" in lines[0].getMessage() and "not evaluated" in lines[0].getMessage()

    # The same OPA, asked once by an enforcing hook, denies; its decision log holds that decision only.
    enforcing = MutationHook(Settings(url=opa.url))
    with pytest.raises(PodDenied, match="every pod is denied"):
        enforcing(worker_pod("enforced"))
    enforcing.close()
    entries = decisions_logged(opa, at_least=1)
    assert [entry["input"]["pod"]["metadata"]["name"] for entry in entries] == ["enforced"]


def test_mode_off_needs_no_opa_at_all(hook_log):
    """Nothing listens at the url, fail_mode is closed: with the switch off the pods still go through."""
    hook = MutationHook(Settings(url="http://127.0.0.1:9", mode="off", fail_mode="closed", timeout=0.2))
    for name in ("a", "b"):
        pod = worker_pod(name)
        before = encode(pod)
        hook(pod)
        assert encode(pod) == before
    hook.close()
