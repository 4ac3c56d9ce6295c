"""Registration: the airflow.policy entry point, lazy imports, and a second registration not patching twice."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from airflow_opa_mutation import AUDIT_ANNOTATION, plugin

from .conftest import decision_policy, worker_pod


def test_entry_point_is_declared():
    found = [ep for ep in entry_points(group="airflow.policy") if ep.value == "airflow_opa_mutation.plugin"]
    assert len(found) == 1
    assert found[0].load() is plugin
    marker = getattr(plugin.pod_mutation_hook, "airflow.policy_impl", None)
    try:
        import pluggy  # noqa: F401
    except ImportError:
        assert marker is None
    else:
        assert marker is not None  # a pluggy hookimpl of project "airflow.policy"


#: What the first pod may load, and no Airflow process before it.
HEAVY = ("kubernetes", "urllib3", "requests", "jsonpatch", "opa_client")


@pytest.mark.parametrize("statement", [
    "import airflow_opa_mutation.plugin",  # what Airflow's entry point loading runs in every process
    "import airflow_opa_mutation",
    # The public names that need nothing heavy: the errors and the types users receive.
    "from airflow_opa_mutation import AUDIT_ANNOTATION, Decision, Message, OpaMutationError, PatchOp, PodDenied, PodRef",
])
def test_import_is_light(statement):
    """Every Airflow process imports the plugin at start-up; it must not drag in the kubernetes client
    nor the HTTP stack."""
    code = f"import json, sys; {statement}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_second_registration_does_not_patch_twice(start_opa, make_hook, hook_log):
    counter = """
    decision := {"patch": [{"op": "add", "path": "/metadata/labels/applied", "value": sprintf("%d", [n])}]} if {
        n := to_number(object.get(input.pod.metadata.labels, "applied", "0")) + 1
    }
    """
    hook = make_hook(start_opa(decision_policy(counter)))
    pod = worker_pod()
    hook(pod)  # the entry point's call
    hook(pod)  # airflow_local_settings.py's call on the same object, right after
    assert pod.metadata.labels["applied"] == "1"
    assert "registered more than once" in hook_log.text
    assert json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])["request_uid"]
    other = worker_pod("other")
    hook(other)  # a different pod is evaluated normally
    assert other.metadata.labels["applied"] == "1"
    other.metadata.labels["extra"] = "changed since"  # the same object, changed right after: evaluated again
    hook(other)
    assert other.metadata.labels["applied"] == "2"
    pod.metadata.labels["extra"] = "changed since"  # and after another pod came between
    hook(pod)
    assert pod.metadata.labels["applied"] == "2"
