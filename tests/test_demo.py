"""The README's demo: a real OPA with the shipped policies, sample Airflow pods, a diff or a deny each —
and the same with an organization's configuration delta (a policy turned on, a DAG exempted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_demo(*args: str) -> str:
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), *args],
                            capture_output=True, text=True, env=env, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def sections(output: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("■ "):
            current = line[2:].split(":")[0]
            parts[current] = ""
        elif current:
            parts[current] += line + "\n"
    return parts


def test_demo_with_the_shipped_configuration():
    out = sections(run_demo())
    worker = out["1-executor-worker.yaml"]
    assert "MUTATED by pod_security_context, security_context, service_account_token" in worker
    assert re.search(r'^\+\s*"automountServiceAccountToken": false', worker, re.MULTILINE)
    assert '"runAsNonRoot": true' in worker
    assert "MUTATED" in out["2-kpo-latest.yaml"]
    assert "[deny_privileged]" in out["3-privileged.yaml"] and "DENIED" in out["3-privileged.yaml"]
    assert "[deny_host_path]" in out["4-host-path.yaml"] and "[deny_host_namespaces]" in out["4-host-path.yaml"]


def test_demo_with_a_configuration_delta():
    out = sections(run_demo("--config", str(REPO / "scripts" / "demo-configs" / "example.yaml")))
    assert "resource_defaults" in out["1-executor-worker.yaml"]  # turned on with parameters
    assert '"memory": "2Gi"' in out["1-executor-worker.yaml"]
    assert "DENIED" in out["2-kpo-latest.yaml"] and "[image_tag]" in out["2-kpo-latest.yaml"]  # warn -> deny
    assert "ALLOWED unchanged" in out["3-privileged.yaml"]  # the exempted DAG
    assert "DENIED" in out["4-host-path.yaml"]  # other DAGs are still judged
