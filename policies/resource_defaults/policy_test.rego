package airflow.pod.policies.resource_defaults_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.resource_defaults

_params := {
	"requests": {"cpu": "250m", "memory": "512Mi"},
	"limits": {"memory": "1Gi", "nvidia.com/gpu": null},
}

_config := fx.enable("resource_defaults", _params)

_resources(pod, i) := json.patch(pod, sort(resource_defaults.patch)).spec.containers[i].resources

test_missing_requests_and_limits_are_added if {
	resources := _resources(fx.worker_pod, 0) with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as _config
	resources == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
}

test_a_lone_limit_is_not_given_a_request if {
	pod := fx.put(fx.worker_pod, "/spec/containers/0/resources", {"limits": {"cpu": "2"}})
	resources := _resources(pod, 0) with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _config
	resources == {"requests": {"memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
}

test_a_limit_is_raised_to_a_larger_request if {
	pod := fx.put(fx.worker_pod, "/spec/containers/0/resources", {"requests": {"memory": "3Gi"}})
	resources := _resources(pod, 0) with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _config
	resources == {"requests": {"cpu": "250m", "memory": "3Gi"}, "limits": {"memory": "3Gi"}}
}

test_numbers_become_quantity_strings if {
	config := fx.enable("resource_defaults", {"requests": {"cpu": 1}, "limits": {"cpu": 2.5, "memory": "1Gi"}})
	resources := _resources(fx.worker_pod, 0) with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as config
	resources == {"requests": {"cpu": "1"}, "limits": {"cpu": "2.5", "memory": "1Gi"}}
}

test_unparsable_requests_keep_the_default_limit if {
	pod := fx.put(fx.worker_pod, "/spec/containers/0/resources", {"requests": {"memory": "lots"}})
	resources := _resources(pod, 0) with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _config
	resources.limits == {"memory": "1Gi"}
}

test_a_complete_container_is_left_alone if {
	resources := {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/containers/0/resources", "value": resources}])
	resource_defaults.patch == set() with input as {"pod": pod} with data.airflow.pod.lib.config.user as _config
}

test_off_by_default if {
	resource_defaults.defaults.enabled == false
}
