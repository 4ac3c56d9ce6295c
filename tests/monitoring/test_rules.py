"""deploy/monitoring/prometheus-rules.yaml through the real promtool (Debian's, from scripts/install-tools):
``promtool check rules`` on the PrometheusRule's spec, and ``promtool test rules`` with alerts.test.yaml,
where every alert fires on synthetic series and a look-alike that must not fire stays silent
(issue 25, item 12). The OPA names and labels those series use are checked against a real OPA's scrape
in tests/bundles/test_metrics.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from ..conftest import REPO

RULES = REPO / "deploy" / "monitoring" / "prometheus-rules.yaml"
UNIT_TESTS = Path(__file__).with_name("alerts.test.yaml")


def promtool() -> str:
    path = os.environ.get("AOM_PROMTOOL_BIN") or str(REPO / ".tools" / "bin" / "promtool")
    assert Path(path).is_file(), f"no promtool at {path}: run scripts/install-tools promtool"
    return path


def rule_file(folder: Path) -> Path:
    """The PrometheusRule's spec: a Prometheus rule file (``groups:``), what a plain Prometheus loads."""
    document = yaml.safe_load(RULES.read_text())
    assert (document["apiVersion"], document["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(document["spec"], sort_keys=False))
    return path


def run(*args: str, cwd: Path) -> str:
    result = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def alerts() -> set[str]:
    spec = yaml.safe_load(RULES.read_text())["spec"]
    return {rule["alert"] for group in spec["groups"] for rule in group["rules"] if "alert" in rule}


def test_promtool_checks_the_rules(tmp_path):
    out = run("check", "rules", str(rule_file(tmp_path)), cwd=tmp_path)
    assert f"SUCCESS: {len(alerts())} rules found" in out, out


def test_every_alert_fires_in_the_unit_tests(tmp_path):
    rule_file(tmp_path)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    out = run("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert "SUCCESS" in out, out
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fired == alerts(), f"alerts without a firing test: {sorted(alerts() - fired)}"
    assert silent >= alerts() - {"OpaMetricsDown"}, f"alerts never seen silent: {sorted(alerts() - silent)}"
