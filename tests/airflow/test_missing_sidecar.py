"""A KubernetesPodOperator task in a worker pod whose template lacks the OPA sidecar (a custom podTemplate or
the task's own pod_template_file): real Airflow's ``build_pod_request_obj`` calls the worker's hook, whose
url (the sidecar's loopback address) has nothing listening. The task must fail with an error that names the
url and the missing sidecar, within the hook's deadline, never hang (issue 25, item 14; docs/helm.md,
"Your own pod templates"). The deadline is checked through the client's own clock (tests/clientprobe.py)."""

from __future__ import annotations

import pytest

from airflow_opa_mutation import OpaUnavailable
from airflow_opa_mutation.cli._local_opa import free_port

from ..clientprobe import ClientProbe
from .conftest import make_kpo, task_context

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize("require_bundles", [False, True])
def test_a_task_without_the_sidecar_fails_plainly_and_in_time(kubeconfig, process_hook, monkeypatch,
                                                              require_bundles):
    probe = ClientProbe(monkeypatch)
    url = f"http://127.0.0.1:{free_port()}"  # the sidecar's address in a pod that has none
    process_hook(url, timeout=0.5, require_bundles=require_bundles)
    kpo = make_kpo(kubeconfig)
    with pytest.raises(OpaUnavailable) as raised:  # the provider lets the hook's exception through
        kpo.build_pod_request_obj(task_context(kpo, run_id="manual__2026-12-07T12:00:00+00:00"))
    text = str(raised.value)
    assert f"no OPA sidecar answering at {url}: does this pod's template include the sidecar? (docs/helm.md)" in text
    assert "dag_id=warehouse" in text and "task_id=transform" in text  # which task, from the log line alone
    if require_bundles:
        assert probe.calls == [], "refused at the bundle check, before any decision call"
    else:
        call = probe.decision()
        call.assert_bounded()
        call.assert_gave_up_at_the_deadline()
