"""What a process running the hook imports: never the command line's stack (opa-python-client pulls in
aiohttp, which cost 0.34-0.48 s at the first pod when the hook built that client)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import decision_policy

CLI_ONLY = ("opa_client", "aiohttp", "click", "rich")

_RUN_THE_HOOK = """
import json, sys
from kubernetes import client as k8s
from airflow_opa_mutation import load_settings, pod_mutation_hook

load_settings()  # where Airflow is installed, this imports Airflow's configuration (and what Airflow imports)
before = sorted({m.split(".")[0] for m in sys.modules})
pod = k8s.V1Pod(
    metadata=k8s.V1ObjectMeta(name="imports", namespace="airflow"),
    spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="apache/airflow:3.3.2")]),
)
pod_mutation_hook(pod)
after = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"labels": pod.metadata.labels, "before": before, "after": after}))
"""


def test_running_the_hook_imports_nothing_of_the_command_line(start_opa, tmp_path):
    opa = start_opa(decision_policy('decision := {"patch": [{"op": "add", "path": "/metadata/labels", "value": {"seen": "yes"}}]}'))
    # Where Airflow is installed the configuration reads airflow.cfg: a fresh one, never the developer's.
    env = {**os.environ, "AIRFLOW__OPA_MUTATION__URL": opa.url, "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW_CONFIG": str(tmp_path / "airflow.cfg")}
    done = subprocess.run([sys.executable, "-c", _RUN_THE_HOOK], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])  # after anything Airflow logs on stdout
    assert report["labels"] == {"seen": "yes"}  # the hook ran against OPA
    assert "opa_client" not in report["after"] and "aiohttp" not in report["after"]
    # click and rich come with Airflow where it is installed (Airflow's own imports): never with the hook.
    assert not set(CLI_ONLY) & (set(report["after"]) - set(report["before"]))
    if "airflow" not in report["after"]:
        assert not set(CLI_ONLY) & set(report["after"])
