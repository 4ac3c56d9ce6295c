"""bench/gatekeeper_eval.py: Gatekeeper's mutation engine (built from the Go module proxy by
bench/gatekeeper/build, reused from the per-user cache) runs on the benchmark's 1-container pod, reports
its figures in the shape bench/report.py reads, and mutates the pod exactly as the library's decision
(a real OPA) does. Figures are never asserted, only their presence."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def _gatekeeper_eval() -> Any:
    """bench/gatekeeper_eval.py as a module (bench/ first on sys.path, as when it runs as a script)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import gatekeeper_eval

    return gatekeeper_eval


def test_short_run_measures_gatekeeper_on_the_library_s_work(tmp_path: Path) -> None:
    out = tmp_path / "gatekeeper.json"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'hook'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, str(BENCH / "gatekeeper_eval.py"), "--short", "--sizes", "1",
                           "--out", str(out)], env=env, capture_output=True, text=True, check=False, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    pinned = re.search(r"open-policy-agent/gatekeeper/v3 (v\S+)", (BENCH / "gatekeeper" / "go.mod").read_text())
    assert pinned is not None
    assert result["gatekeeper_version"] == pinned.group(1)
    assert result["mutators"] == 7
    assert result["short"] is True
    assert result["build_seconds"] >= 0
    (row,) = result["rows"]
    assert row["containers"] == 1
    assert row["calls"] == 20 and row["warmup"] == 5
    assert 0 < row["gatekeeper_median_us"] <= row["gatekeeper_p90_us"]
    # The same work: Gatekeeper's pod is the library's patched pod, field for field.
    assert row["differences"] == []
    assert row["same_fields"] is True
    assert "same fields as the library: True" in done.stdout


def test_a_field_gatekeeper_missed_or_changed_is_reported() -> None:
    module = _gatekeeper_eval()
    pod = {"spec": {"containers": [{"name": "base"}]}}
    decision_patch = [
        {"op": "add", "path": "/spec/automountServiceAccountToken", "value": False, "policy": "service_account_token"},
        {"op": "add", "path": "/spec/containers/0/securityContext", "value": {"capabilities": {"drop": ["ALL"]}},
         "policy": "security_context"},
    ]
    expected = module.patched(pod, decision_patch)
    assert expected == {"spec": {"automountServiceAccountToken": False,
                                 "containers": [{"name": "base", "securityContext": {"capabilities": {"drop": ["ALL"]}}}]}}
    assert module.differences(expected, json.loads(json.dumps(expected))) == []
    gatekeeper = {"spec": {"automountServiceAccountToken": 0,
                           "containers": [{"name": "base", "securityContext": {"capabilities": {"drop": ["all"]}}}],
                           "hostNetwork": False}}
    assert module.differences(expected, gatekeeper) == [
        "/spec/automountServiceAccountToken: library false, Gatekeeper 0",
        '/spec/containers/0/securityContext/capabilities/drop/0: library "ALL", Gatekeeper "all"',
        "/spec/hostNetwork: only in Gatekeeper's result (false)",
    ]
    missing = {"spec": {"containers": [{"name": "base"}]}}
    assert module.differences(expected, missing) == [
        "/spec/automountServiceAccountToken: only in the library's result (false)",
        '/spec/containers/0/securityContext: only in the library\'s result ({"capabilities": {"drop": ["ALL"]}})',
    ]
