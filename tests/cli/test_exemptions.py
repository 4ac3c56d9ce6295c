"""Exemptions with an owner and an end (issue 26, item 2), as the command line shows them: ``verify`` and
``doctor`` list expired exemptions (an error) and ones ending within 14 days (a warning), ``bundle build
--strict`` refuses expired ones, and ``exemptions report`` counts, per exemption, the pods it let through
(from OPA's decision log or a ``scan``), including the configured ones nobody used.

Against real OPA servers serving the shipped library. Dates are relative to today, with days to spare on
both sides, so a run crossing midnight still sees the same states.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_opa_mutation.cli._outcomes import outcome_json

from ..conftest import POLICIES, worker_pod
from .conftest import parse
from .test_policy_config import add_sample, config_file, doctor, named

TODAY = datetime.now(UTC).date()
EXPIRED = (TODAY - timedelta(days=2)).isoformat()
SOON = (TODAY + timedelta(days=5)).isoformat()
LATER = (TODAY + timedelta(days=100)).isoformat()

#: legacy: every pod in namespace airflow, for 100 days; old: expired two days ago (namespace ci, so it
#: would not match the test pods anyway); api: ml's pods, ending in 5 days.
CONFIG: dict[str, Any] = {
    "exempt": {"legacy": {"namespace": "airflow", "reason": "legacy batch jobs, migrating", "ticket": "SEC-1",
                          "expires": LATER}},
    "policies": {
        "image_tag": {"exempt": {"old": {"namespace": "ci", "expires": EXPIRED}}},
        "service_account_token": {"exempt": {"api": {"labels": {"team": "ml"}, "ticket": "SEC-2", "expires": SOON}}},
    },
}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """The shipped library without its samples: each test adds the one sample it is about."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("samples"))
    return target


# -- verify and doctor --------------------------------------------------------------------------------------


def test_verify_fails_on_an_expired_exemption_and_warns_on_one_ending_soon(run, library, schema_validator):
    config = {"policies": CONFIG["policies"]}
    add_sample(library, config)
    result = run("verify", str(library), "-o", "json")
    document = parse(result)
    schema_validator(document)
    assert result.exit_code == 1, document
    [checked] = document["samples"]
    assert checked["status"] == "fail"
    assert [p for p in checked["problems"] if "expired" in p] == [
        f"exemption policies.image_tag.exempt.old expired: expires {EXPIRED}, "
        f"so it has matched no pod since {(TODAY - timedelta(days=1)).isoformat()}T00:00:00Z"
    ]
    assert checked["warnings"] == [
        f"exemption policies.service_account_token.exempt.api ends within 14 days: expires {SOON}, "
        f"so it matches no pod from {(TODAY + timedelta(days=6)).isoformat()}T00:00:00Z"
    ]

    text = run("verify", str(library), "--color", "never")
    assert text.exit_code == 1
    assert "exemption policies.image_tag.exempt.old expired" in text.stdout
    assert "warning: exemption policies.service_account_token.exempt.api ends within 14 days" in text.stdout


def test_verify_passes_exemptions_that_end_later(run, library):
    add_sample(library, {"policies": {"image_tag": {"exempt": {"ci": {"namespace": "ci", "expires": LATER}}}}})
    result = run("verify", str(library), "-o", "json")
    assert result.exit_code == 0, result.stdout
    assert parse(result)["samples"][0]["warnings"] == []


def test_doctor_fails_on_an_expired_exemption_and_warns_on_one_ending_soon(run, tmp_path):
    code, checks = doctor(run, tmp_path, CONFIG)
    assert code == 1, checks
    found = sorted((c["status"], c["detail"].split(" ")[1]) for c in named(checks, "exemption expiry"))
    assert found == [("fail", "policies.image_tag.exempt.old"), ("warn", "policies.service_account_token.exempt.api")]
    assert all(c["fix"] for c in named(checks, "exemption expiry"))
    assert [c["status"] for c in named(checks, "policy configuration")] == ["ok"]


def test_doctor_is_quiet_about_exemptions_that_end_later(run, tmp_path):
    code, checks = doctor(run, tmp_path, {"exempt": CONFIG["exempt"]})
    assert code == 0, checks
    assert named(checks, "exemption expiry") == []


def test_a_malformed_expires_fails_doctor_as_a_configuration_error(run, tmp_path):
    code, checks = doctor(run, tmp_path, {"exempt": {"legacy": {"namespace": "airflow", "expires": "31/01/2027"}}})
    assert code == 1
    [error] = named(checks, "policy configuration")
    assert error["status"] == "fail"
    assert error["detail"].startswith("configuration error: exempt.legacy.expires: must be an RFC 3339 date")


# -- bundle build --strict ----------------------------------------------------------------------------------


def build(run, tmp_path: Path, config: dict[str, Any], *extra: str) -> tuple[Any, Path]:
    out = tmp_path / "bundle.tar.gz"
    result = run("bundle", "build", "--policies", str(POLICIES), "--config", str(config_file(tmp_path, config)),
                 "--unsigned", "--revision", "t", "--output", str(out), *extra)
    return result, out


def test_bundle_build_warns_about_expired_exemptions_and_strict_refuses_them(run, tmp_path):
    result, out = build(run, tmp_path, CONFIG)
    assert result.exit_code == 0, result.output
    assert "warning: exemption policies.image_tag.exempt.old expired" in result.stderr
    assert "warning: exemption policies.service_account_token.exempt.api ends within 14 days" in result.stderr
    out.unlink()

    strict, out = build(run, tmp_path, CONFIG, "--strict")
    assert strict.exit_code == 1
    assert "--strict" in strict.stderr and "exemption policies.image_tag.exempt.old expired" in strict.stderr
    assert "service_account_token.exempt.api" not in strict.stderr  # ending soon is still a warning only
    assert not out.exists()


def test_bundle_build_strict_refuses_advisories_too(run, tmp_path):
    strict, out = build(run, tmp_path, {"exempt": {"platform": {"namespace": "kube-*"}}}, "--strict")
    assert strict.exit_code == 1
    assert "exempt.platform.namespace" in strict.stderr
    assert not out.exists()
    ok, out = build(run, tmp_path, {"exempt": CONFIG["exempt"]}, "--strict")
    assert ok.exit_code == 0, ok.output
    assert out.exists()


# -- exemptions report --------------------------------------------------------------------------------------


def pods() -> list[Any]:
    """Two pods in namespace airflow (legacy), one of them ml's (api too), and one elsewhere."""
    first, second, third = worker_pod("first"), worker_pod("second"), worker_pod("third")
    second.metadata.labels["team"] = "ml"
    third.metadata.namespace = "batch"
    return [first, second, third]


def decision_log(start_opa, make_hook, tmp_path: Path) -> tuple[Path, Path, list[Any]]:
    """OPA's own decision log (console) of three hook decisions, as the collector writes it, and the
    configuration file."""
    data = tmp_path / "org.json"
    data.write_text(json.dumps({"airflow": {"pod": {"config": CONFIG}}}))
    opa = start_opa(paths=[POLICIES, data], args=["--set", "decision_logs.console=true"])
    hook = make_hook(opa)
    outcomes = [hook.evaluate(pod) for pod in pods()]
    deadline = time.monotonic() + 30
    while True:
        events = [json.loads(line) for line in opa.logs().splitlines() if '"Decision Log"' in line]
        if len(events) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(events) == 3, opa.logs()[-2000:]
    log = tmp_path / "decisions.jsonl"
    lines = [json.dumps({"kind": "decision", **event}) for event in events]  # deploy/collector/collector.py
    lines.append(json.dumps({"kind": "status", "labels": {}, "bundles": {}}))
    log.write_text("\n".join(lines) + "\n")
    return log, config_file(tmp_path, CONFIG), outcomes


def by_key(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["key"]: e for e in document["exemptions"]}


def test_the_decision_log_says_which_exemptions_applied(start_opa, make_hook, tmp_path):
    log, _, outcomes = decision_log(start_opa, make_hook, tmp_path)
    results = [json.loads(line).get("result", {}) for line in log.read_text().splitlines()[:3]]
    assert [[e["name"] for e in r.get("exemptions", [])] for r in results] == [["legacy"], ["legacy", "api"], []]
    assert results[0]["exemptions"][0] == {"name": "legacy", "reason": "legacy batch jobs, migrating",
                                           "ticket": "SEC-1", "expires": LATER}
    assert [e.key for e in outcomes[1].decision.exemptions] == ["exempt.legacy", "policies.service_account_token.exempt.api"]


def test_exemptions_report_counts_pods_per_exemption_and_lists_unused_ones(
    run, start_opa, make_hook, tmp_path, schema_validator
):
    log, config, _ = decision_log(start_opa, make_hook, tmp_path)
    result = run("exemptions", "report", "--decision-log", str(log), "--config", str(config), "-o", "json")
    document = parse(result)
    schema_validator(document)
    assert result.exit_code == 0, document
    assert document["decisions"] == 3
    report = by_key(document)
    assert {key: (e["pods"], e["configured"]) for key, e in report.items()} == {
        "exempt.legacy": (2, True),
        "policies.service_account_token.exempt.api": (1, True),
        "policies.image_tag.exempt.old": (0, True),
    }
    assert report["exempt.legacy"]["ticket"] == "SEC-1" and report["exempt.legacy"]["state"] == "active"
    assert report["policies.image_tag.exempt.old"]["state"] == "expired"
    assert report["policies.service_account_token.exempt.api"]["state"] == "expiring"
    assert report["exempt.legacy"]["last_seen"] is not None

    text = run("exemptions", "report", "--decision-log", str(log), "--config", str(config), "--color", "never")
    assert text.exit_code == 0
    assert "policies.image_tag.exempt.old" in text.stdout and "never used" in text.stdout


def test_exemptions_report_period(run, start_opa, make_hook, tmp_path):
    log, config, _ = decision_log(start_opa, make_hook, tmp_path)
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    later = run("exemptions", "report", "--decision-log", str(log), "--config", str(config),
                "--since", tomorrow, "-o", "json")
    document = parse(later)
    assert document["decisions"] == 0
    assert {e["key"]: e["pods"] for e in document["exemptions"]} == {
        "exempt.legacy": 0, "policies.service_account_token.exempt.api": 0, "policies.image_tag.exempt.old": 0,
    }
    until = run("exemptions", "report", "--decision-log", str(log), "--until", tomorrow, "--since", "7d",
                "-o", "json")
    assert by_key(parse(until))["exempt.legacy"]["pods"] == 2
    assert by_key(parse(until))["exempt.legacy"]["configured"] is None  # no --config: not known


def test_exemptions_report_reads_a_scan(run, start_opa, make_hook, tmp_path, schema_validator):
    data = tmp_path / "org.json"
    data.write_text(json.dumps({"airflow": {"pod": {"config": CONFIG}}}))
    hook = make_hook(start_opa(paths=[POLICIES, data]))
    tasks = []
    for pod in pods():
        outcome = hook.evaluate(pod)
        tasks.append({"dag_id": "example_dag", "task_id": pod.metadata.name, "outcome": outcome_json(outcome)})
    scan = tmp_path / "scan.json"
    scan.write_text(json.dumps({"schema_version": 1, "command": "scan", "exit_code": 0, "tasks": tasks}))
    result = run("exemptions", "report", "--scan", str(scan), "-o", "json")
    document = parse(result)
    schema_validator(document)
    assert {e["key"]: (e["pods"], e["dag_ids"]) for e in document["exemptions"]} == {
        "exempt.legacy": (2, ["example_dag"]),
        "policies.service_account_token.exempt.api": (1, ["example_dag"]),
    }


def test_exemptions_report_needs_a_source(run, tmp_path):
    result = run("exemptions", "report", "-o", "json")
    assert result.exit_code == 2
    assert "--decision-log" in parse(result)["error"]["message"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    result = run("exemptions", "report", "--decision-log", str(bad))
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.stderr


def test_the_report_is_listed_with_the_commands(run):
    result = run("--help")
    assert "exemptions" in result.stdout


def test_an_unquoted_yaml_date_is_read_as_written(run, tmp_path, library):
    # PyYAML turns 2027-01-31 into a date object; OPA's YAML loader keeps the string: the tools must agree
    text = f"exempt:\n  old:\n    namespace: ci\n    expires: {EXPIRED}\n  later:\n    namespace: ci\n    expires: {LATER}T18:00:00Z\n"
    config = tmp_path / "unquoted.yaml"
    config.write_text(text)
    result = run("bundle", "build", "--policies", str(POLICIES), "--config", str(config), "--unsigned",
                 "--revision", "t", "--output", str(tmp_path / "b.tar.gz"), "--strict")
    assert result.exit_code == 1
    assert f"exemption exempt.old expired: expires {EXPIRED}," in result.stderr
    checks = parse(run("doctor", "--policies", str(POLICIES), "--config", str(config), "-o", "json"))["checks"]
    assert [c["detail"].split(":")[0] for c in named(checks, "exemption expiry")] == ["exemption exempt.old expired"]
    sample = add_sample(library, {})
    sample.write_text(sample.read_text().replace("config: {}", "config:\n" + "\n".join(
        "  " + line for line in text.splitlines())))
    verified = parse(run("verify", str(library), "-o", "json"))
    assert verified["samples"][0]["problems"] == [
        f"exemption exempt.old expired: expires {EXPIRED}, "
        f"so it has matched no pod since {(TODAY - timedelta(days=1)).isoformat()}T00:00:00Z"
    ]


def test_preview_shows_the_exemptions_that_applied(run, tmp_path, schema_validator):
    from airflow_opa_mutation import pod_to_json

    pod = tmp_path / "pod.json"
    pod.write_text(json.dumps(pod_to_json(pods()[1])))
    config = str(config_file(tmp_path, CONFIG))
    text = run("preview", "--policies", str(POLICIES), "--config", config, "--color", "never", str(pod))
    assert text.exit_code == 0, text.output
    assert f"   exempt [*] exempt.legacy  (SEC-1, expires {LATER}): legacy batch jobs, migrating" in text.stdout
    assert f"   exempt [service_account_token] policies.service_account_token.exempt.api  (SEC-2, expires {SOON})" in (
        text.stdout
    )
    document = parse(run("preview", "--policies", str(POLICIES), "--config", config, "-o", "json", str(pod)))
    schema_validator(document)
    assert [e["name"] for e in document["pods"][0]["exemptions"]] == ["legacy", "api"]
