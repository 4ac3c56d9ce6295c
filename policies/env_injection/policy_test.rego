package airflow.pod.policies.env_injection_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.env_injection

_env := {
	"HTTPS_PROXY": "http://proxy.example.com:3128",
	"AIRFLOW_IS_K8S_EXECUTOR_POD": "False",
	"RETRIES": 3,
	"POD_IP": {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
	"DROPPED": null,
}

_config := fx.enable("env_injection", {"env": _env})

test_variables_are_appended_without_duplicating_names if {
	ops := env_injection.patch with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as _config
	json.patch(fx.worker_pod, sort(ops)).spec.containers[0].env == [
		{"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"},
		{"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"},
		{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
		{"name": "RETRIES", "value": "3"},
	]
}

test_containers_without_env_get_a_list if {
	ops := env_injection.patch with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as _config
	pod := json.patch(fx.kpo_pod, sort(ops))
	count(pod.spec.containers[0].env) == 4
	count(pod.spec.initContainers[0].env) == 4
}

test_a_container_with_every_variable_is_left_alone if {
	env := [
		{"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"},
		{"name": "HTTPS_PROXY", "value": "http://other:3128"},
		{"name": "POD_IP", "value": "x"},
		{"name": "RETRIES", "value": "1"},
	]
	pod := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/containers/0/env", "value": env}])
	env_injection.patch == set() with input as {"pod": pod} with data.airflow.pod.lib.config.user as _config
}
