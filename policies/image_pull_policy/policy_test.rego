package airflow.pod.policies.image_pull_policy_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.image_pull_policy

test_absent_policies_are_set if {
	ops := image_pull_policy.patch with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as fx.enable("image_pull_policy", {})
	ops == {
		{"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": "IfNotPresent"},
		{"op": "add", "path": "/spec/initContainers/0/imagePullPolicy", "value": "IfNotPresent"},
	}
}

test_present_policies_are_kept_without_override if {
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": "Always"}])
	image_pull_policy.patch == set() with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as fx.enable("image_pull_policy", {})
}

test_override_replaces_other_values if {
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": "Always"}])
	ops := image_pull_policy.patch with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as fx.enable("image_pull_policy", {"policy": "Never", "override": true})
	ops == {{"op": "replace", "path": "/spec/containers/0/imagePullPolicy", "value": "Never"}}
}

test_an_invalid_policy_is_denied_and_not_applied if {
	config := fx.enable("image_pull_policy", {"policy": "Sometimes"})
	image_pull_policy.patch == set() with input as {"pod": fx.worker_pod} with data.airflow.pod.lib.config.user as config
	msg := `invalid configuration: policy must be one of "Always", "IfNotPresent", "Never", got "Sometimes"`
	image_pull_policy.deny == {msg} with data.airflow.pod.lib.config.user as config
}

# An image volume's pullPolicy is the same decision for the same pull: set
# where absent, replaced with override.
_volumes := [
	{"name": "logs", "emptyDir": {}},
	{"name": "model", "image": {"reference": "registry.example.com/models/bert:7"}},
	{"name": "tools", "image": {"reference": "registry.example.com/tools:1", "pullPolicy": "Always"}},
]

test_image_volumes_get_the_policy_where_absent if {
	pod := fx.put(fx.worker_pod, "/spec/volumes", _volumes)
	ops := image_pull_policy.patch with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as fx.enable("image_pull_policy", {})
	ops == {
		{"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": "IfNotPresent"},
		{"op": "add", "path": "/spec/volumes/1/image/pullPolicy", "value": "IfNotPresent"},
	}
}

test_override_replaces_image_volume_policies if {
	pod := fx.put(fx.worker_pod, "/spec/volumes", _volumes)
	ops := image_pull_policy.patch with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as fx.enable("image_pull_policy", {"policy": "Never", "override": true})
	ops == {
		{"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": "Never"},
		{"op": "add", "path": "/spec/volumes/1/image/pullPolicy", "value": "Never"},
		{"op": "replace", "path": "/spec/volumes/2/image/pullPolicy", "value": "Never"},
	}
}
