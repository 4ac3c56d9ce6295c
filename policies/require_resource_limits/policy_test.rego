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
