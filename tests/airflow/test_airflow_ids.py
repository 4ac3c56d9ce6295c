"""``input.airflow`` as policies see it, for pods from both launchers, through an OPA policy that copies
it into an annotation: mapped tasks, retries, run ids that labels cannot hold, ids too long for a label.

For KubernetesPodOperator pods the labels carry sanitized ids only; the hook takes the real ones from
Airflow's current task context when that context is the task the labels name. The task runner sets it
with ``airflow.sdk.execution_time.context.set_current_context(context)`` around ``execute()``; so do
these tests.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..replay import replayable
from .conftest import construct, echoed, make_kpo, task_context

pytestmark = pytest.mark.airflow

RUN_ID = "manual__2026-11-25T12:00:00.123456+00:00"
LONG_DAG_ID = "customer_lifetime_value.nightly_rebuild_of_all_regional_marts_v2"  # 64 > 63 characters
LONG_TASK_ID = "load_group.upsert_every_partition_of_the_customer_fact_table_into_the_warehouse"


# -- KubernetesExecutor: the unsanitized annotations --------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({}, {"dag_id": "etl", "task_id": "load", "run_id": "scheduled__2026-11-25T00:00:00+00:00",
              "try_number": 1, "launcher": "kubernetes_executor"}),
        ({"map_index": 7, "try_number": 3, "run_id": RUN_ID},
         {"dag_id": "etl", "task_id": "load", "run_id": RUN_ID, "try_number": 3, "map_index": 7,
          "launcher": "kubernetes_executor"}),
        ({"dag_id": LONG_DAG_ID, "task_id": LONG_TASK_ID, "map_index": 0, "try_number": 2},
         {"dag_id": LONG_DAG_ID, "task_id": LONG_TASK_ID, "run_id": "scheduled__2026-11-25T00:00:00+00:00",
          "try_number": 2, "map_index": 0, "launcher": "kubernetes_executor"}),
    ],
    ids=["first-try", "mapped-retry", "long-ids"],
)
def test_executor_pods(template_file, echo_opa, process_hook, ids, expected):
    process_hook(echo_opa.url)
    pod = construct(template_file, **ids)
    assert echoed(pod) == expected
    if "map_index" not in ids:
        assert "map_index" not in pod.metadata.labels  # the executor omits it for unmapped tasks


# -- KubernetesPodOperator: labels, and the current task context ---------------------------------------


def _kpo_pod(kubeconfig, *, current=None, dag_id="warehouse", task_id="transform", run_id=RUN_ID,
             try_number=1, map_index=-1):
    """Build the operator's pod with its task's context; inside ``set_current_context(current)`` if given."""
    from airflow.sdk.execution_time.context import set_current_context

    kpo = make_kpo(kubeconfig, task_id=task_id, dag_id=dag_id)
    context = task_context(kpo, run_id=run_id, try_number=try_number, map_index=map_index)
    if current is None:
        return kpo.build_pod_request_obj(context)
    with set_current_context(context if current == "own" else current):
        return kpo.build_pod_request_obj(context)


def test_kpo_inside_its_running_task_gets_the_real_ids(kubeconfig, echo_opa, process_hook):
    process_hook(echo_opa.url)
    pod = _kpo_pod(kubeconfig, current="own", try_number=3, map_index=5)
    assert echoed(pod) == {"dag_id": "warehouse", "task_id": "transform", "run_id": RUN_ID, "try_number": 3,
                           "map_index": 5, "launcher": "kubernetes_pod_operator"}
    assert pod.metadata.labels["run_id"] != RUN_ID  # the pod itself only has the sanitized form


def test_kpo_long_ids_come_from_the_running_task(kubeconfig, echo_opa, process_hook):
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    process_hook(echo_opa.url)
    pod = _kpo_pod(kubeconfig, current="own", dag_id=LONG_DAG_ID, task_id=LONG_TASK_ID, try_number=2, map_index=0)
    labels = pod.metadata.labels
    assert labels["task_id"] == make_safe_label_value(LONG_TASK_ID) != LONG_TASK_ID  # cut and hashed
    assert labels["dag_id"] == make_safe_label_value(LONG_DAG_ID) != LONG_DAG_ID
    assert echoed(pod) == {"dag_id": LONG_DAG_ID, "task_id": LONG_TASK_ID, "run_id": RUN_ID, "try_number": 2,
                           "map_index": 0, "launcher": "kubernetes_pod_operator"}


def test_kpo_without_a_current_context_falls_back_to_the_labels(kubeconfig, echo_opa, process_hook):
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    from airflow_opa_mutation._airflow_context import running_task_ids

    process_hook(echo_opa.url)
    assert running_task_ids() is None
    pod = _kpo_pod(kubeconfig, try_number=4, map_index=2)
    assert echoed(pod) == {"dag_id": "warehouse", "task_id": "transform", "run_id": make_safe_label_value(RUN_ID),
                           "try_number": 4, "map_index": 2, "launcher": "kubernetes_pod_operator",
                           # no running task vouches for them: only the pod does (issue 13)
                           "untrusted": ["dag_id", "task_id", "run_id", "try_number", "map_index", "launcher"]}


def test_kpo_ignores_a_current_context_of_another_task(kubeconfig, echo_opa, process_hook):
    """A pod built for task A while task B's context is current keeps A's label values, never B's ids."""
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    process_hook(echo_opa.url)
    other_task = make_kpo(kubeconfig, task_id="other_task")
    for other in (
        task_context(other_task, run_id=RUN_ID),  # another task of the same run
        task_context(make_kpo(kubeconfig), run_id=RUN_ID.replace("12:00", "13:00")),  # same task, another run
        task_context(make_kpo(kubeconfig), run_id=RUN_ID, try_number=2),  # same task, another try
    ):
        pod = _kpo_pod(kubeconfig, current=other)
        assert echoed(pod)["run_id"] == make_safe_label_value(RUN_ID)


def test_running_task_ids_reads_the_task_runners_context(kubeconfig):
    from airflow.sdk import get_current_context
    from airflow.sdk.execution_time.context import set_current_context

    from airflow_opa_mutation._airflow_context import running_task_ids

    kpo = make_kpo(kubeconfig)
    context = task_context(kpo, run_id=RUN_ID, try_number=2, map_index=1)
    assert running_task_ids() is None
    with set_current_context(context):
        assert get_current_context() is context
        assert running_task_ids() == {"dag_id": "warehouse", "task_id": "transform", "run_id": RUN_ID,
                                      "try_number": 2, "map_index": 1}
    assert running_task_ids() is None


_label_text = st.text(
    alphabet=st.sampled_from("abcXYZ019_-.:+/ é"), max_size=80
) | st.from_regex(r"[a-z0-9_.\-]{60,70}", fullmatch=True)


@replayable(max_examples=300, deadline=None)
@given(_label_text)
def test_our_copy_of_make_safe_label_value_matches_the_providers(value):
    """Used when the provider is not loaded; must give exactly the provider's label values."""
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    from airflow_opa_mutation._airflow_context import safe_label_value

    assert safe_label_value(value) == make_safe_label_value(value)
