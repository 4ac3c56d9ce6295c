package airflow.pod.policies.node_placement_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.node_placement

_gpu := {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

_batch := {"key": "pool", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}

_rules := [
	{"match": {"dag_id": "ml.*"}, "node_selector": {"pool": "gpu"}, "tolerations": [_gpu]},
	{
		"match": {"namespace": "airflow"},
		"node_selector": {"pool": "batch", "kubernetes.io/arch": "amd64"},
		"tolerations": [_batch],
	},
	{"node_selector": {"pool": "general"}},
]

_config := fx.enable("node_placement", {"rules": _rules})

test_first_matching_rule_wins if {
	node_placement.rule_index == 0 with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
		with data.airflow.pod.lib.config.user as _config
	node_placement.rule_index == 1 with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as _config
	node_placement.rule_index == 2 with input as {"pod": fx.kpo_pod, "airflow": {}}
		with data.airflow.pod.lib.config.user as _config
}

test_selector_and_tolerations_are_added if {
	ops := node_placement.patch with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as _config
	json.patch(fx.worker_pod, sort(ops)).spec == object.union(fx.worker_pod.spec, {
		"nodeSelector": {"pool": "batch", "kubernetes.io/arch": "amd64"},
		"tolerations": [_batch],
	})
}

test_present_entries_are_kept if {
	pod := json.patch(fx.kpo_pod, [
		{"op": "add", "path": "/spec/nodeSelector", "value": {"pool": "a100"}},
		{"op": "add", "path": "/spec/tolerations", "value": [_gpu]},
	])
	node_placement.patch == set() with input as {"pod": pod, "airflow": fx.kpo_airflow}
		with data.airflow.pod.lib.config.user as _config
}

test_no_matching_rule_means_no_change if {
	node_placement.patch == set() with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as fx.enable("node_placement", {"rules": [{"match": {"namespace": "x"}}]})
}
