package airflow.pod.policies.require_resource_limits_test

import data.airflow.pod.decision
import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.require_resource_limits

_config := fx.enable("require_resource_limits", {"resources": ["cpu", "memory"]})

test_missing_limits_are_denied if {
	deny := require_resource_limits.deny with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as _config
	deny == {
		`container "base" has no cpu limit`,
		`container "base" has no memory limit`,
		`initContainer "fetch-data" has no cpu limit`,
		`initContainer "fetch-data" has no memory limit`,
	}
}

test_init_containers_can_be_left_out if {
	config := fx.enable("require_resource_limits", {"init_containers": false})
	deny := require_resource_limits.deny with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as config
	deny == {`container "base" has no memory limit`}
}

test_limits_added_by_resource_defaults_count if {
	config := {"policies": {
		"require_resource_limits": {"enabled": true},
		"resource_defaults": {"enabled": true, "params": {"limits": {"memory": "1Gi"}}},
	}}
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
	d.deny == []
}

_resources(pod, resources) := fx.put(pod, "/spec/containers/0/resources", resources)

test_requests_can_be_required_too if {
	config := fx.enable("require_resource_limits", {"require_requests": true, "init_containers": false})
	pod := _resources(fx.worker_pod, {"limits": {"memory": "1Gi"}})
	require_resource_limits.deny == {`container "base" has no memory request`} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
	complete := _resources(fx.worker_pod, {"limits": {"memory": "1Gi"}, "requests": {"memory": "512Mi"}})
	require_resource_limits.deny == set() with input as {"pod": complete}
		with data.airflow.pod.lib.config.user as config
}

test_limits_above_the_maximum_are_denied if {
	config := fx.enable("require_resource_limits", {"resources": [], "max": {"memory": "4Gi", "cpu": "1500m"}})
	pod := _resources(fx.worker_pod, {"limits": {"memory": "8Gi", "cpu": 1.5}})
	msg := `container "base" has a memory limit of 8Gi, above the maximum 4Gi`
	require_resource_limits.deny == {msg} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}

test_a_maximum_that_is_no_quantity_is_a_configuration_error if {
	config := fx.enable("require_resource_limits", {"resources": [], "max": {"memory": "lots"}})
	msg := `invalid configuration: max memory is "lots", not a Kubernetes quantity`
	require_resource_limits.deny == {msg} with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as config
}

test_ephemeral_containers_need_no_limits if {
	config := fx.enable("require_resource_limits", {"init_containers": true})
	pod := json.patch(fx.worker_pod, [
		{"op": "add", "path": "/spec/containers/0/resources", "value": {"limits": {"memory": "1Gi"}}},
		{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debug", "image": "busybox:1.36"}]},
	])
	require_resource_limits.deny == set() with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}
