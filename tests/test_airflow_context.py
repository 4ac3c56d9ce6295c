"""input.airflow from the labels and annotations each launcher sets."""

from airflow_opa_mutation._airflow_context import airflow_context


def test_executor_annotations_win_over_sanitized_labels():
    labels = {"dag_id": "d", "task_id": "t", "run_id": "manual__2026-11-25T120000-0000-5b0c4e1b2",
              "try_number": "2", "map_index": "4", "kubernetes_executor": "True"}
    annotations = {"dag_id": "d", "task_id": "t", "run_id": "manual__2026-11-25T12:00:00+00:00", "try_number": "2"}
    expected = {"dag_id": "d", "task_id": "t", "run_id": "manual__2026-11-25T12:00:00+00:00",
                "try_number": 2, "map_index": 4, "launcher": "kubernetes_executor"}
    assert airflow_context(labels, annotations, trust_pod=True) == expected
    # Outside the scheduler's construct_pod call only the pod vouches for them: marked (issue 13)
    assert airflow_context(labels, annotations) == expected | {
        "untrusted": ["dag_id", "task_id", "run_id", "try_number", "map_index", "launcher"]}


def test_kpo_labels_only():
    labels = {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": "1", "kubernetes_pod_operator": "True"}
    expected = {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 1, "launcher": "kubernetes_pod_operator"}
    assert airflow_context(labels, {}, trust_pod=True) == expected
    # No running task names them (no Airflow here): marked untrusted
    assert airflow_context(labels, {}) == expected | {
        "untrusted": ["dag_id", "task_id", "run_id", "try_number", "launcher"]}


def test_the_kpo_label_wins_over_the_executor_label():
    labels = {"kubernetes_executor": "True", "kubernetes_pod_operator": "True"}
    assert airflow_context(labels, {})["launcher"] == "kubernetes_pod_operator"


def test_unknown_and_malformed_ids_are_absent():
    assert airflow_context({}, {}) == {"launcher": "unknown"}
    assert airflow_context({"try_number": "one", "map_index": ""}, {"dag_id": ""}) == {"launcher": "unknown"}
