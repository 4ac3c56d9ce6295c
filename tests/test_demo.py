"""The README's demo: a real OPA with the shipped policies, sample Airflow pods, a diff or a deny each —
and the same with an organization's configuration delta (a policy turned on, a DAG exempted)."""

from __future__ import annotations

import os
import re
import shutil
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


def test_the_demo_needs_only_opa_and_one_environment(tmp_path):
    """scripts/demo from a copy of the repository, with an AOM_CACHE holding only OPA and no Go on PATH:
    it must run, building nothing (issue 25, item 16: a cold demo builds OPA and one venv, not the
    kube-apiserver, etcd, the static OPA, Regal or the oracle). setup-python is replaced by a stand-in
    that records what it was asked for and links the k37 environment already built here (the real one
    would reinstall the copy into that shared environment)."""
    copy = tmp_path / "repo"
    for folder in ("scripts", "hook", "tools", "policies"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", ".tools"))
    asked = tmp_path / "setup-python-args"
    venv = (REPO / ".tools" / "venv-k37").resolve()
    stand_in = copy / "scripts" / "setup-python"
    stand_in.write_text(f'#!/usr/bin/env bash\necho "$@" > {asked}\n'
                        f'mkdir -p "$(dirname "$0")/../.tools" && ln -sfn {venv} "$(dirname "$0")/../.tools/venv-k37"\n')
    stand_in.chmod(0o755)

    version = subprocess.run(["bash", "-c", f"source {copy}/scripts/versions.env && echo $OPA_VERSION"],
                             capture_output=True, text=True, check=True).stdout.strip()
    cache = tmp_path / "cache"
    (cache / f"opa-{version}").mkdir(parents=True)
    (cache / f"opa-{version}" / "opa").symlink_to(Path(os.environ["AOM_OPA_BIN"]).resolve())
    no_go = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "go").exists())
    env = {**os.environ, "AOM_CACHE": str(cache), "PATH": no_go, "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)  # the demo sets it to the copy's hook/
    result = subprocess.run([str(copy / "scripts" / "demo")], capture_output=True, text=True, env=env,
                            check=False, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "building" not in result.stderr, result.stderr
    assert asked.read_text().split() == ["k37"]
    assert sorted(p.name for p in (copy / ".tools" / "bin").iterdir()) == ["opa"]
    assert sorted(p.name for p in cache.iterdir()) == [f"opa-{version}"]
    out = sections(result.stdout)
    assert "DENIED" in out["3-privileged.yaml"]
    assert "MUTATED" in out["1-executor-worker.yaml"]
