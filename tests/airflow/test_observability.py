"""Logs and metrics as an Airflow operator sees them: one INFO line per pod (pod, Airflow ids, OPA's decision
id, ops applied, time taken), deny at ERROR, policy warnings at WARNING, and counters and a timer through
Airflow's own ``Stats``, against the shipped policy library in a real OPA with console decision logs."""

from __future__ import annotations

import copy
import json
import logging
import re
import time

import pytest

from airflow_opa_mutation import AUDIT_ANNOTATION

from .conftest import construct, override

pytestmark = pytest.mark.airflow

SUMMARY = re.compile(
    r"opa_mutation (?P<verdict>\S+) pod=(?P<pod>\S+) (?P<ids>.+?) request_uid=(?P<uid>[0-9a-f-]{36}) "
    r"decision_id=(?P<decision_id>\S+)(?: revision=\S+)? ops=(?P<ops>\d+) policies=(?P<policies>\S+) "
    r"duration_ms=(?P<ms>\d+\.\d\d)"
)
POD = "airflow/etl-load-0a1b2c3d"


@pytest.fixture
def hook_clock(monkeypatch):
    """The hook's ``perf_counter``, made to see every evaluation take exactly 0.25 s: what the log line
    and the timer report is then known to the millisecond, on any machine, however loaded."""
    from types import SimpleNamespace

    from airflow_opa_mutation import hook as hook_module

    reads = iter(range(10**6))

    def perf_counter() -> float:
        read = next(reads)  # an evaluation reads it twice: when it starts and when it ends
        return read // 2 * 10.0 + read % 2 * 0.25

    monkeypatch.setattr(hook_module, "time", SimpleNamespace(perf_counter=perf_counter))


@pytest.fixture
def hook_log(caplog):
    caplog.set_level(logging.INFO, logger="airflow_opa_mutation")
    return caplog


def summaries(caplog):
    """The hook's per-pod summary lines, as (level, match)."""
    found = []
    for record in caplog.records:
        if record.name == "airflow_opa_mutation" and record.getMessage().startswith("opa_mutation "):
            match = SUMMARY.fullmatch(record.getMessage())
            assert match, record.getMessage()
            found.append((record.levelno, match))
    return found


def opa_decision_log(opa, decision_id, timeout=5.0):
    """The entry of OPA's console decision log with this decision id (OPA writes it asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in opa.logs().splitlines():
            if decision_id in line:
                entry = json.loads(line)
                if entry.get("decision_id") == decision_id:
                    return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"decision {decision_id} not in OPA's decision log:\n{opa.logs()[-3000:]}")
        time.sleep(0.05)


def test_one_info_line_per_pod_with_ids_decision_id_ops_and_duration(
    template_file, library_opa, process_hook, hook_log, hook_clock
):
    process_hook(library_opa.url)
    pod = construct(template_file, try_number=2, map_index=3)

    lines = summaries(hook_log)
    assert len(lines) == 1
    level, line = lines[0]
    assert level == logging.INFO
    assert line["verdict"] == "mutated"
    assert line["pod"] == POD
    assert line["ids"] == "dag_id=etl task_id=load run_id=scheduled__2026-11-25T00:00:00+00:00 try_number=2 map_index=3"
    assert line["ms"] == "250.00"  # the evaluation's duration, in milliseconds
    assert {"security_context", "service_account_token"} <= set(line["policies"].split(","))

    # The decision id is OPA's own: the entry OPA logged for it is the request this pod made.
    entry = opa_decision_log(library_opa, line["decision_id"])
    assert entry["input"]["request"]["uid"] == line["uid"]
    assert entry["input"]["airflow"]["run_id"] == "scheduled__2026-11-25T00:00:00+00:00"
    assert int(line["ops"]) == len(entry["result"]["patch"]) > 0
    audit = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert (audit["decision_id"], audit["request_uid"]) == (line["decision_id"], line["uid"])


def test_deny_is_logged_at_error_and_policy_warnings_at_warning(
    template_file, library_opa, process_hook, hook_log
):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException
    from kubernetes import client as k8s

    process_hook(library_opa.url)
    with pytest.raises(PodMutationHookException):
        construct(template_file, override(security_context=k8s.V1SecurityContext(privileged=True)))
    errors = [r.getMessage() for r in hook_log.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "[deny_privileged]" in errors[0] and POD in errors[0] and "dag_id=etl" in errors[0]
    assert [m["verdict"] for _, m in summaries(hook_log)] == ["denied"]
    hook_log.clear()

    pod = construct(template_file, override(image="busybox:latest"))  # the shipped image_tag policy warns
    warnings = [r.getMessage() for r in hook_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"policy warning for pod {POD}")
    assert "[image_tag]" in warnings[0] and "busybox:latest" in warnings[0]
    assert [m["verdict"] for _, m in summaries(hook_log)] == ["mutated"]  # a warning does not stop the pod
    assert pod.spec.containers[0].security_context.run_as_non_root is True


@pytest.fixture
def stats_recorder():
    """Airflow's ``Stats`` (the task SDK's copy, live in scheduler and workers) recording into a list."""
    from airflow.sdk._shared.observability.metrics import stats as stats_module
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability.stats import Stats

    class Recorder(NoStatsLogger):
        def __init__(self):
            self.calls = []

        def incr(self, stat, count=1, rate=1, *, tags=None):
            self.calls.append(("incr", stat, count))

        def timing(self, stat, dt, *, tags=None):
            self.calls.append(("timing", stat, dt))

    saved = (stats_module._factory, stats_module._export_legacy_names)
    recorder = Recorder()
    Stats.initialize(factory=lambda: recorder, export_legacy_names=False)
    yield recorder
    Stats.initialize(factory=saved[0], export_legacy_names=saved[1])


def test_counters_and_timer_reach_airflow_stats(
    template_file, library_opa, stopped_opa_url, process_hook, stats_recorder, hook_clock
):
    from airflow import settings
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException
    from kubernetes import client as k8s

    process_hook(library_opa.url)
    mutated = construct(template_file)  # applied
    settings.pod_mutation_hook(copy.deepcopy(mutated))  # the library has nothing left to do: unchanged
    with pytest.raises(PodMutationHookException):  # denied
        construct(template_file, override(security_context=k8s.V1SecurityContext(privileged=True)))
    process_hook(stopped_opa_url, timeout=0.5)
    with pytest.raises(PodMutationHookException):  # errors (fail closed)
        construct(template_file)
    process_hook(stopped_opa_url, timeout=0.5, fail_mode="open")
    construct(template_file)  # errors (fail open)
    process_hook(library_opa.url, mode="dry-run")
    construct(template_file)  # dry_run

    counters = [(stat, count) for kind, stat, count in stats_recorder.calls if kind == "incr"]
    assert counters == [
        ("opa_mutation.applied", 1),
        ("opa_mutation.unchanged", 1),
        ("opa_mutation.denied", 1),
        ("opa_mutation.errors", 1),
        ("opa_mutation.errors", 1),
        ("opa_mutation.dry_run", 1),
    ]
    timings = [dt for kind, stat, dt in stats_recorder.calls if kind == "timing" and stat == "opa_mutation.duration"]
    assert timings == [250.0] * 6  # one per pod, in milliseconds: each evaluation's 0.25 s
    assert {kind for kind, _, _ in stats_recorder.calls} == {"incr", "timing"}
