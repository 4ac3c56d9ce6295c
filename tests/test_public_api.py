"""The public surface: every public name importable from the package itself, and typed as used.

Users (and their tests) import from ``airflow_opa_mutation`` only; the modules behind it are private.
"""

from __future__ import annotations

import pytest

import airflow_opa_mutation as aom
from airflow_opa_mutation import (
    Decision,
    Message,
    Outcome,
    PatchOp,
    PodDenied,
    PodRef,
    hook,
    pod_from_json,
    pod_to_json,
)

from .conftest import decision_policy, worker_pod


def test_every_public_name_resolves_and_is_listed():
    for name in aom.__all__:
        assert getattr(aom, name) is not None
        assert name in dir(aom)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        aom.nothing  # noqa: B018


def test_one_base_class_for_every_error():
    for error in (aom.PodDenied, aom.PatchRejected, aom.InvalidDecision, aom.OpaUnavailable, aom.ConfigError):
        assert issubclass(error, aom.OpaMutationError)


#: Public in ``airflow_opa_mutation.hook`` only: the accessor of the process-wide hook.
HOOK_MODULE_ONLY = {"default_hook"}


def test_the_hook_module_keeps_its_public_names():
    """``from airflow_opa_mutation.hook import ...`` works as before; the same objects as the package's."""
    assert set(hook.__all__) - set(aom.__all__) == HOOK_MODULE_ONLY
    for name in set(hook.__all__) - HOOK_MODULE_ONLY:
        assert getattr(hook, name) is getattr(aom, name), name
    assert hook.AUDIT_ANNOTATION == aom.AUDIT_ANNOTATION == "airflow-opa-mutation/decision"


def test_default_hook_is_the_one_configure_installed_and_pod_mutation_hook_uses(start_opa, pod):
    """``hook.default_hook()``: the process-wide hook ``configure`` replaced, which the package's
    ``pod_mutation_hook`` (Airflow's entry point) runs."""
    opa = start_opa(decision_policy('decision := {"patch": [{"op": "add", "path": "/metadata/labels/via", "value": "default"}]}'))
    installed = aom.configure(aom.Settings(url=opa.url))
    try:
        assert isinstance(installed, aom.MutationHook)
        assert hook.default_hook() is installed and hook.default_hook() is installed  # built once, then kept
        aom.pod_mutation_hook(pod)
        assert pod.metadata.labels["via"] == "default"
        replaced = aom.configure(aom.Settings(url=opa.url))
        assert replaced is not installed and hook.default_hook() is replaced
    finally:
        with hook._default_lock:
            current, hook._default = hook._default, None
        if current is not None:
            current.close()


def test_pod_json_round_trip():
    pod = worker_pod()
    doc = pod_to_json(pod)
    assert doc["metadata"]["labels"]["dag_id"] == "example_dag"
    assert doc["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] == "worker-logs"  # camelCase keys
    again = pod_from_json(doc)
    assert again == pod
    assert pod_to_json(again) == doc


@pytest.mark.parametrize(("doc", "pointer"), [
    ({"spec": {"containers": [{"name": "base", "imagee": "busybox"}]}}, "/spec/containers/0/imagee"),
    ({"spec": {"containers": [{"name": "base", "tty": "yes"}]}}, "/spec/containers/0/tty"),
])
def test_pod_from_json_refuses_what_the_client_would_drop_or_coerce(doc, pointer):
    with pytest.raises(ValueError, match=pointer):
        pod_from_json(doc)


def test_the_types_users_receive_are_the_exported_ones(start_opa, make_hook):
    opa = start_opa(decision_policy("""
    decision := {"patch": [{"op": "add", "path": "/metadata/labels/team", "value": "data", "policy": "team"}], "deny": deny}

    deny contains {"msg": "no", "policy": "gate"} if input.pod.metadata.name == "refused"
    """))
    mutation_hook = make_hook(opa)
    outcome = mutation_hook.evaluate(worker_pod())
    assert isinstance(outcome, Outcome)
    assert isinstance(outcome.pod, PodRef)
    assert isinstance(outcome.decision, Decision)
    assert outcome.decision.patch == (PatchOp(0, {"op": "add", "path": "/metadata/labels/team", "value": "data"}, "team"),)
    assert outcome.airflow["dag_id"] == "example_dag"  # input.airflow, as sent to OPA
    with pytest.raises(PodDenied) as denied:
        mutation_hook(worker_pod("refused"))
    assert denied.value.messages == (Message("no", "gate"),)
    assert denied.value.pod == PodRef("airflow", "refused", outcome.pod.airflow)
