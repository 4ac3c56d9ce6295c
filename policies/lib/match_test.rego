package airflow.pod.lib.match_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.lib.match

test_empty_matcher_matches_every_pod if {
	match.applies({}, fx.worker_pod, fx.ke_airflow)
}

test_namespace_glob if {
	match.applies({"namespace": "air*"}, fx.worker_pod, fx.ke_airflow)
	match.applies({"namespace": "{airflow,ml-jobs}"}, fx.kpo_pod, fx.kpo_airflow)
	not match.applies({"namespace": "kube-*"}, fx.worker_pod, fx.ke_airflow)
}

test_dag_and_task_globs_cross_dots if {
	match.applies({"dag_id": "ml.*", "task_id": "fit_*"}, fx.kpo_pod, fx.kpo_airflow)
	not match.applies({"dag_id": "ml.*", "task_id": "predict"}, fx.kpo_pod, fx.kpo_airflow)
	not match.applies({"dag_id": "*"}, fx.kpo_pod, {})
}

test_launcher if {
	match.applies({"launcher": "kubernetes_pod_operator"}, fx.kpo_pod, fx.kpo_airflow)
	not match.applies({"launcher": "kubernetes_pod_operator"}, fx.worker_pod, fx.ke_airflow)
}

test_labels_and_annotations if {
	match.applies({"labels": {"kubernetes_executor": "True", "airflow-worker": "*"}}, fx.worker_pod, fx.ke_airflow)
	not match.applies({"labels": {"team": "*"}}, fx.worker_pod, fx.ke_airflow)
	match.applies({"annotations": {"dag_id": "etl_*"}}, fx.worker_pod, fx.ke_airflow)
	not match.applies({"annotations": "etl"}, fx.worker_pod, fx.ke_airflow)
}

test_unknown_keys_and_bad_values_never_match if {
	not match.applies({"namespaces": ["airflow"]}, fx.worker_pod, fx.ke_airflow)
	not match.applies({"namespace": ["airflow"]}, fx.worker_pod, fx.ke_airflow)
	not match.applies("airflow", fx.worker_pod, fx.ke_airflow)
}

test_any_glob if {
	match.any_glob(["quay.io/*", "busybox:1.*"], "busybox:1.36")
	not match.any_glob(["quay.io/*"], "busybox:1.36")
	not match.any_glob([], "busybox:1.36")
}

test_untrusted_ids_never_match if {
	spoofed := object.union(fx.ke_airflow, {"dag_id": "ops_debug", "untrusted": ["dag_id", "task_id", "launcher"]})
	not match.applies({"dag_id": "ops_debug"}, fx.worker_pod, spoofed)
	not match.applies({"dag_id": "*"}, fx.worker_pod, spoofed)
	not match.applies({"task_id": "load_*"}, fx.worker_pod, spoofed)
	not match.applies({"launcher": "kubernetes_executor"}, fx.worker_pod, spoofed)
	match.applies({"namespace": "airflow"}, fx.worker_pod, spoofed)
}

test_an_id_not_listed_as_untrusted_still_matches if {
	partly := object.union(fx.kpo_airflow, {"untrusted": ["run_id"]})
	match.applies({"dag_id": "ml.*", "task_id": "fit_*", "launcher": "kubernetes_pod_operator"}, fx.kpo_pod, partly)
}
