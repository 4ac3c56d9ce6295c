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
from airflow_opa_mutation import pod_mutation_hook

pod = k8s.V1Pod(
    metadata=k8s.V1ObjectMeta(name="imports", namespace="airflow"),
    spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="apache/airflow:3.3.2")]),
)
pod_mutation_hook(pod)
print(json.dumps({"labels": pod.metadata.labels, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_running_the_hook_imports_nothing_of_the_command_line(start_opa):
    opa = start_opa(decision_policy('decision := {"patch": [{"op": "add", "path": "/metadata/labels", "value": {"seen": "yes"}}]}'))
    env = {**os.environ, "AIRFLOW__OPA_MUTATION__URL": opa.url}
    done = subprocess.run([sys.executable, "-c", _RUN_THE_HOOK], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["labels"] == {"seen": "yes"}  # the hook ran against OPA
    assert "airflow_opa_mutation" in report["modules"]
    assert not set(CLI_ONLY) & set(report["modules"])
