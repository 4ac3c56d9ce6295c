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
            self.calls.append(("incr", stat, count, tags))

        def timing(self, stat, dt, *, tags=None):
            self.calls.append(("timing", stat, dt, tags))

    saved = (stats_module._factory, stats_module._export_legacy_names)
    recorder = Recorder()
    Stats.initialize(factory=lambda: recorder, export_legacy_names=False)
    yield recorder
    Stats.initialize(factory=saved[0], export_legacy_names=saved[1])


def _pods_through_every_outcome(template_file, library_opa, stopped_opa_url, process_hook):
    """One pod per outcome, enforce then dry-run, through Airflow's own pod construction."""
    from airflow import settings
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException
    from kubernetes import client as k8s

    privileged = override(security_context=k8s.V1SecurityContext(privileged=True))
    process_hook(library_opa.url)
    mutated = construct(template_file)  # applied
    settings.pod_mutation_hook(copy.deepcopy(mutated))  # the library has nothing left to do: unchanged
    with pytest.raises(PodMutationHookException):  # denied
        construct(template_file, privileged)
    process_hook(stopped_opa_url, timeout=0.5)
    with pytest.raises(PodMutationHookException):  # errors (fail closed)
        construct(template_file)
    process_hook(stopped_opa_url, timeout=0.5, fail_mode="open")
    construct(template_file)  # errors and failed_open
    process_hook(library_opa.url, mode="dry-run")
    construct(template_file)  # dry_run, would_change
    settings.pod_mutation_hook(copy.deepcopy(mutated))  # dry_run, nothing would change
    construct(template_file, privileged)  # dry_run, would_deny: nothing raised
    process_hook(stopped_opa_url, timeout=0.5, mode="dry-run")
    construct(template_file)  # dry_run, errors: OPA down is as visible as in enforce


#: Per pod, the counters (name, mode, outcome tag) the hook emits, in the order of the pods above.
EXPECTED_COUNTERS = [
    [("applied", "enforce", "applied")],
    [("unchanged", "enforce", "unchanged")],
    [("denied", "enforce", "denied")],
    [("errors", "enforce", "error")],
    [("errors", "enforce", "failed_open"), ("failed_open", "enforce", "failed_open")],
    [("dry_run", "dry-run", "would_change"), ("would_change", "dry-run", "would_change")],
    [("dry_run", "dry-run", "no_change")],
    [("dry_run", "dry-run", "would_deny"), ("would_deny", "dry-run", "would_deny")],
    [("dry_run", "dry-run", "error"), ("errors", "dry-run", "error")],
]


def test_counters_and_timer_reach_airflow_stats(
    template_file, library_opa, stopped_opa_url, process_hook, stats_recorder, hook_clock
):
    _pods_through_every_outcome(template_file, library_opa, stopped_opa_url, process_hook)

    calls = stats_recorder.calls
    pods, current = [], []
    for kind, stat, value, tags in calls:  # the timer closes each pod's metrics
        if kind == "timing":
            assert stat == "opa_mutation.duration" and value == 250.0  # each evaluation's 0.25 s, in ms
            pods.append((current, tags))
            current = []
        elif stat != "opa_mutation.policy":
            assert value == 1
            current.append((stat.removeprefix("opa_mutation."), tags["mode"], tags["outcome"]))
            assert set(tags) == {"mode", "outcome"}
    assert current == []
    assert [counters for counters, _ in pods] == EXPECTED_COUNTERS
    # The timer carries the pod's mode and outcome too.
    assert [(tags["mode"], tags["outcome"]) for _, tags in pods] == [c[0][1:] for c in EXPECTED_COUNTERS]
    assert {kind for kind, *_ in calls} == {"incr", "timing"}


def test_policy_counters_are_tagged_with_the_policy_and_what_it_asked_for(
    template_file, library_opa, stopped_opa_url, process_hook, stats_recorder, hook_log
):
    """``opa_mutation.policy``: once per pod per policy that asked for a deny, a patch or a warning."""
    _pods_through_every_outcome(template_file, library_opa, stopped_opa_url, process_hook)
    policy = [tags for kind, stat, _, tags in stats_recorder.calls if stat == "opa_mutation.policy"]
    assert all(set(tags) == {"mode", "outcome", "policy"} for tags in policy)
    by = {(t["mode"], t["outcome"], t["policy"]) for t in policy}
    assert ("enforce", "deny", "deny_privileged") in by and ("dry-run", "deny", "deny_privileged") in by
    applied = next(m for _, m in summaries(hook_log) if m["verdict"] == "mutated")["policies"].split(",")
    assert {("enforce", "patch", name) for name in applied} <= by
    assert {outcome for _, outcome, _ in by} <= {"deny", "patch", "warn"}


def documented_counters():
    """The counters of the metrics table in docs/running-at-scale.md ("Airflow metrics of the hook")."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "running-at-scale.md").read_text()
    section = text[text.index("### Airflow metrics of the hook"):]
    section = section[: section.index("\n#", 1)]
    return set(re.findall(r"^\| `(opa_mutation\.[a-z_]+)` \|", section, re.M))


def test_the_documented_metrics_table_lists_exactly_what_the_hook_emits(
    template_file, library_opa, stopped_opa_url, process_hook, stats_recorder
):
    _pods_through_every_outcome(template_file, library_opa, stopped_opa_url, process_hook)
    emitted = {stat for _, stat, _, _ in stats_recorder.calls}
    assert documented_counters() == emitted


def test_tags_reach_the_otel_backend_as_attributes(template_file, library_opa, process_hook):
    """Airflow's OpenTelemetry backend turns the tags into attributes (statsd shows them only with
    ``statsd_influxdb_enabled``; plain statsd drops them and keeps the counters)."""
    from airflow.sdk._shared.observability.metrics import stats as stats_module
    from airflow.sdk._shared.observability.metrics.otel_logger import SafeOtelLogger
    from airflow.sdk.observability.stats import Stats
    from kubernetes import client as k8s
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    saved = (stats_module._factory, stats_module._export_legacy_names)
    Stats.initialize(factory=lambda: SafeOtelLogger(MeterProvider(metric_readers=[reader])), export_legacy_names=False)
    try:
        process_hook(library_opa.url, mode="dry-run")
        construct(template_file, override(security_context=k8s.V1SecurityContext(privileged=True)))
    finally:
        Stats.initialize(factory=saved[0], export_legacy_names=saved[1])
    points = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    points.setdefault(metric.name, []).append(dict(point.attributes))
    assert points["airflow.opa_mutation.would_deny"] == [{"mode": "dry-run", "outcome": "would_deny"}]
    assert {"mode": "dry-run", "outcome": "deny", "policy": "deny_privileged"} in points["airflow.opa_mutation.policy"]
