"""Airflow's labels are listed twice, by necessity: the hook's ``config.AIRFLOW_LABELS`` ships in the wheel and
the library's ``k8s.protected_labels`` in the bundle. A real OPA serving policies/ must agree with the hook,
both as data and in what the framework refuses to write. The hook's extra ``protected_labels`` stay the hook's
own guard: the library never sees them (policies/README.md, "The framework").
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from airflow_opa_mutation import PatchRejected
from airflow_opa_mutation.config import AIRFLOW_LABELS

from .conftest import POLICIES, worker_pod

# A policy of the user's own that overwrites every label the pod has (or only `team`).
RELABEL = """
package airflow.pod.policies.relabel

defaults := {"enabled": true, "params": {"only": null}}

patch contains {"op": "replace", "path": concat("/", ["/metadata/labels", key]), "value": "changed"} if {
    some key, _ in input.pod.metadata.labels
    object.get(data.airflow.pod.lib.config.params("relabel"), "only", null) in {null, key}
}
"""


def config(policies: dict) -> dict[str, str]:
    return {"config.json": json.dumps({"airflow": {"pod": {"config": {"policies": policies}}}})}


def every_label_pod():
    pod = worker_pod()
    pod.metadata.labels.update({label: "x" for label in AIRFLOW_LABELS if label not in pod.metadata.labels})
    pod.metadata.labels["team"] = "data"
    return pod


def test_the_library_lists_exactly_the_hooks_airflow_labels(start_opa):
    opa = start_opa(paths=[POLICIES])
    with urllib.request.urlopen(f"{opa.url}/v1/data/airflow/pod/lib/k8s/protected_labels") as response:
        library = json.load(response)["result"]
    assert len(set(AIRFLOW_LABELS)) == len(AIRFLOW_LABELS)
    assert sorted(library) == sorted(AIRFLOW_LABELS)


def test_the_framework_refuses_exactly_airflows_labels_and_not_the_hooks_extra_ones(start_opa, make_hook):
    opa = start_opa({"relabel.rego": RELABEL}, paths=[POLICIES])
    outcome = make_hook(opa, protected_labels=("team",)).evaluate(every_label_pod())
    assert outcome.decision is not None
    refused = {
        m.group(1)
        for entry in outcome.decision.deny
        if entry.policy == "framework"
        and (m := re.fullmatch(r'policy "relabel" must not change /metadata/labels/(.+) \(a field .*', entry.msg))
    }
    assert refused == set(AIRFLOW_LABELS)
    # The library does not know the hook's extra label: its write stays in the decision.
    assert [op.path for op in outcome.decision.patch if op.policy == "relabel"] == ["/metadata/labels/team"]


def test_the_hooks_extra_labels_are_guarded_by_the_hook_alone(start_opa, make_hook):
    opa = start_opa({"relabel.rego": RELABEL, **config({"relabel": {"params": {"only": "team"}}})}, paths=[POLICIES])
    pod = every_label_pod()
    with pytest.raises(PatchRejected, match="'team' is protected") as raised:
        make_hook(opa, protected_labels=("team",))(pod)
    assert raised.value.policy == "relabel"
    assert pod.metadata.labels["team"] == "data"
    make_hook(opa)(pod)
    assert pod.metadata.labels["team"] == "changed"


@pytest.mark.parametrize(("present", "after"), [(None, "data-platform"), ("ml", "ml")])
def test_the_shipped_library_never_trips_the_hooks_extra_labels(start_opa, make_hook, present, after):
    """airflow_labels adds a label only where absent, which the guard allows."""
    mapping = {"example_*": {"team": "data-platform"}}
    opa = start_opa(config({"airflow_labels": {"enabled": True, "params": {"mapping": mapping}}}), paths=[POLICIES])
    pod = worker_pod()
    if present:
        pod.metadata.labels["team"] = present
    make_hook(opa, protected_labels=("team",))(pod)
    assert pod.metadata.labels["team"] == after
