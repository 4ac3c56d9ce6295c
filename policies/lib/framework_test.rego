package airflow.pod.lib.framework_test

import data.airflow.pod.decision
import data.airflow.pod.lib.config as cfg
import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.lib.framework
import data.airflow.pod.lib.k8s
import data.airflow.pod.policies.env_injection as first
import data.airflow.pod.policies.node_placement as second

# --- the shipped defaults ----------------------------------------------------

test_defaults_harden_a_worker_pod if {
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
	json.patch(fx.worker_pod, d.patch) == fx.hardened_pod
	d.deny == []
	d.warn == []
}

test_defaults_converge if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
	d == {"patch": [], "deny": [], "warn": []}
}

test_every_operation_is_tagged_and_ordered_by_policy if {
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
	policies := [op.policy | some op in d.patch]
	policies == sort(policies)
	{p | some p in policies} == {"pod_security_context", "security_context", "service_account_token"}
}

test_active_lists_enabled_policies_in_order if {
	names := framework.active with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
	names == [
		"deny_host_namespaces", "deny_host_path", "deny_privileged", "image_tag",
		"pod_security", "pod_security_context", "protect_enforcement", "security_context", "service_account_token",
	]
}

test_empty_input_gives_an_empty_decision if {
	d := decision with input as {}
	d == {"patch": [], "deny": [], "warn": []}
}

# --- policy order and set sorting ------------------------------------------

test_array_patches_keep_their_order if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as fx.enable("env_injection", {})
		with first.patch as [
			{"op": "add", "path": "/metadata/annotations/z", "value": "1"},
			{"op": "add", "path": "/metadata/annotations/a", "value": "2"},
		]
	[op.path | some op in d.patch] == ["/metadata/annotations/z", "/metadata/annotations/a"]
}

test_set_patches_are_sorted if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as fx.enable("env_injection", {})
		with first.patch as {
			{"op": "add", "path": "/metadata/annotations/z", "value": "1"},
			{"op": "add", "path": "/metadata/annotations/a", "value": "2"},
		}
	[op.path | some op in d.patch] == ["/metadata/annotations/a", "/metadata/annotations/z"]
}

# --- duplicates and conflicts ----------------------------------------------

_two_policies := {"policies": {
	"env_injection": {"enabled": true},
	"node_placement": {"enabled": true},
}}

test_identical_operations_apply_once_first_policy_wins if {
	op := {"op": "add", "path": "/spec/nodeSelector", "value": {}}
	leaf := {"op": "add", "path": "/spec/nodeSelector/pool", "value": "batch"}
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as _two_policies
		with first.patch as [op]
		with second.patch as [op, leaf]
	d.patch == [
		object.union(op, {"policy": "env_injection"}),
		object.union(leaf, {"policy": "node_placement"}),
	]
	d.deny == []
}

test_conflicting_values_are_denied_naming_both_policies_and_the_path if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as _two_policies
		with first.patch as [{"op": "add", "path": "/spec/hostname", "value": "a"}]
		with second.patch as [{"op": "add", "path": "/spec/hostname", "value": "b"}]
	d.deny == [{
		"policy": "framework",
		"msg": concat("", [
			`conflicting patches at /spec/hostname: `,
			`policy "env_injection" writes "a", policy "node_placement" writes "b"`,
		]),
	}]
}

test_add_and_replace_of_one_value_do_not_conflict if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as _two_policies
		with first.patch as [{"op": "add", "path": "/spec/restartPolicy", "value": "Never"}]
		with second.patch as [{"op": "replace", "path": "/spec/restartPolicy", "value": "Never"}]
	count(d.patch) == 2
	d.deny == []
}

test_remove_against_write_is_a_conflict if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as _two_policies
		with first.patch as [{"op": "remove", "path": "/spec/restartPolicy"}]
		with second.patch as [{"op": "copy", "from": "/metadata/name", "path": "/spec/restartPolicy"}]
	fx.msgs_of(d.deny, "framework") == [concat("", [
		`conflicting patches at /spec/restartPolicy: `,
		`policy "env_injection" removes it, policy "node_placement" copies /metadata/name`,
	])]
}

test_move_is_described if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as _two_policies
		with first.patch as [{"op": "move", "from": "/spec/serviceAccountName", "path": "/spec/hostname"}]
		with second.patch as [{"op": "add", "path": "/spec/hostname", "value": "h"}]
	fx.msgs_of(d.deny, "framework") == [concat("", [
		`conflicting patches at /spec/hostname: `,
		`policy "env_injection" moves /spec/serviceAccountName, policy "node_placement" writes "h"`,
	])]
}

test_appends_never_conflict if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as _two_policies
		with first.patch as [{"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "A", "value": "1"}}]
		with second.patch as [{"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "B", "value": "2"}}]
	count(d.patch) == 2
	d.deny == []
}

test_one_policy_may_write_a_path_twice if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as fx.enable("env_injection", {})
		with first.patch as [
			{"op": "add", "path": "/spec/hostname", "value": "a"},
			{"op": "replace", "path": "/spec/hostname", "value": "b"},
		]
	json.patch(fx.hardened_pod, d.patch).spec.hostname == "b"
	d.deny == []
}

# --- protected fields and invalid operations ---------------------------------

_protected_cases := [
	{"op": "replace", "path": "/metadata/name", "value": "x"},
	{"op": "add", "path": "/metadata/namespace", "value": "x"},
	{"op": "replace", "path": "/metadata/labels/dag_id", "value": "x"},
	{"op": "remove", "path": "/metadata/labels/try_number"},
	{"op": "add", "path": "/metadata/labels/kubernetes_pod_operator", "value": "x"},
	{"op": "add", "path": "/metadata/labels", "value": {}},
	{"op": "replace", "path": "/metadata", "value": {}},
	{"op": "remove", "path": "/spec/containers/0"},
	{"op": "replace", "path": "/spec/containers/0", "value": {"name": "x", "image": "y"}},
	{"op": "replace", "path": "/spec/containers/0/name", "value": "main"},
	{"op": "add", "path": "/spec/containers", "value": []},
	{"op": "replace", "path": "/spec", "value": {}},
	{"op": "move", "from": "/spec/containers/0", "path": "/spec/initContainers/0"},
]

test_operations_on_protected_fields_are_dropped_and_denied if {
	every op in _protected_cases {
		d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
			with cfg.user as fx.enable("env_injection", {})
			with first.patch as [op]
		d.patch == []
		d.deny == [{
			"policy": "framework",
			"msg": sprintf(
				"policy \"env_injection\" must not change %s (a field the hook protects); operation dropped",
				[op.path],
			),
		}]
	}
}

test_safe_neighbours_of_protected_fields_pass if {
	safe := [
		{"op": "add", "path": "/metadata/labels/team", "value": "data"},
		{"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "A", "value": "1"}},
		{"op": "add", "path": "/spec/containers/0", "value": {"name": "sidecar", "image": "busybox:1.36"}},
		{"op": "test", "path": "/metadata/name", "value": "etl-daily-load-warehouse-5k2x9qzt"},
		{"op": "replace", "path": "/spec/containers/0/image", "value": "apache/airflow:3.0.3"},
	]
	every op in safe {
		d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
			with cfg.user as fx.enable("env_injection", {})
			with first.patch as [op]
		d.patch == [object.union(op, {"policy": "env_injection"})]
		fx.msgs_of(d.deny, "framework") == []
	}
}

test_forbidden_paths_cover_every_protected_label if {
	every key in k8s.protected_labels {
		concat("/", ["/metadata/labels", key]) in framework._forbidden
	}
}

test_invalid_operations_are_dropped_and_denied if {
	bad := [
		{"op": "frobnicate", "path": "/spec"},
		{"op": "add", "path": "/spec/x"},
		{"op": "move", "path": "/spec/x"},
		{"op": "add", "path": 3, "value": 1},
		"not an operation",
	]
	every op in bad {
		d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
			with cfg.user as fx.enable("env_injection", {})
			with first.patch as [op]
		d.patch == []
		d.deny == [{
			"policy": "framework",
			"msg": sprintf(
				"policy \"env_injection\" produced an invalid patch operation %s; operation dropped",
				[json.marshal(op)],
			),
		}]
	}
}

test_a_patch_that_does_not_apply_is_denied_and_the_original_pod_judged if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as fx.enable("env_injection", {})
		with first.patch as [{"op": "test", "path": "/spec/restartPolicy", "value": "Always"}]
	fx.msgs_of(d.deny, "framework") == [concat("", [
		"the combined patch does not apply to the pod; ",
		"deny and warn rules judged the unpatched pod",
	])]
	framework.patched_pod == fx.hardened_pod with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as fx.enable("env_injection", {})
		with first.patch as [{"op": "test", "path": "/spec/restartPolicy", "value": "Always"}]
}

# --- two phases ----------------------------------------------------------------

test_validation_judges_the_patched_pod if {
	# the mirror rewrites docker.io images; only the mirror is allowed
	config := {"policies": {
		"image_registry_mirror": {"enabled": true, "params": {"mirrors": {"docker.io": "mirror.example.com/dockerhub"}}},
		"allowed_registries": {"enabled": true, "params": {"registries": ["mirror.example.com", "quay.io/acme"]}},
	}}
	d := decision with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
		with cfg.user as config
	fx.msgs_of(d.deny, "allowed_registries") == []
	json.patch(fx.kpo_pod, d.patch).spec.containers[0].image == "mirror.example.com/dockerhub/library/python:3.11-slim"
}

test_validation_without_the_mutation_denies_the_original if {
	config := fx.enable("allowed_registries", {"registries": ["mirror.example.com", "quay.io/acme"]})
	d := decision with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
		with cfg.user as config
	fx.msgs_of(d.deny, "allowed_registries") == [concat("", [
		`container "base" uses image "python:3.11-slim" (docker.io/library/python), `,
		`which is not from an allowed registry`,
	])]
}

test_messages_may_be_objects_or_other_values if {
	inp := {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
	config := fx.enable("env_injection", {})
	denies := {{"msg": "as object"}, 42}
	warns := ["as array"]

	# env_injection defines no deny or warn: these mock rules it lacks
	# regal ignore:unresolved-reference
	d := decision with input as inp with cfg.user as config with first.deny as denies with first.warn as warns
	d.deny == [{"msg": "42", "policy": "env_injection"}, {"msg": "as object", "policy": "env_injection"}]
	d.warn == [{"msg": "as array", "policy": "env_injection"}]
}

# --- exemptions ------------------------------------------------------------------

test_global_exemption_by_namespace_skips_every_policy if {
	config := {"exempt": {"system": {"namespace": "airflow"}}}
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	d == {"patch": [], "deny": [], "warn": [], "exemptions": [{"name": "system"}]}
	framework.global_exemptions == {"system"} with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
}

test_global_exemption_by_dag_and_task_glob if {
	config := {"exempt": {"legacy": {"dag_id": "etl_*", "task_id": "load_*"}}}
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	d.patch == []
	other := decision with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
		with cfg.user as config
	count(other.patch) > 0
}

test_no_exemption_by_dag_id_when_only_the_pod_vouches_for_it if {
	# issue 13: a pod_override writing dag_id=ops_debug into labels and annotations
	config := {"exempt": {"debugging": {"dag_id": "ops_debug"}}}
	spoofed := object.union(fx.ke_airflow, {"dag_id": "ops_debug", "untrusted": ["dag_id"]})
	d := decision with input as {"pod": fx.worker_pod, "airflow": spoofed}
		with cfg.user as config
	count(d.patch) > 0
	framework.global_exemptions == set() with input as {"pod": fx.worker_pod, "airflow": spoofed}
		with cfg.user as config
}

test_policy_exemption_by_label_skips_only_that_policy if {
	config := {"policies": {"service_account_token": {"exempt": {"api-clients": {"labels": {"dag_id": "etl_daily"}}}}}}
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	fx.ops_of(d, "service_account_token") == []
	count(fx.ops_of(d, "security_context")) > 0
}

test_an_empty_exemption_is_ignored_and_reported if {
	config := {"exempt": {"all": {}}, "policies": {"image_tag": {"exempt": {"none": {}}}}}
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	count(d.patch) > 0
	fx.msgs_of(d.warn, "framework") == [
		`exemption "all" has no conditions and is ignored`,
		`exemption "none" of policy "image_tag" has no conditions and is ignored`,
	]
}

test_unknown_policies_in_the_configuration_are_reported if {
	config := {"policies": {"securty_context": {"enabled": false}}}
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	msg := `configuration error: policies.securty_context: no policy of that name; ignored`
	d.warn == [{"policy": "framework", "msg": msg}]
}

test_framework_messages_sort_among_policies if {
	config := {"policies": {"nope": {}, "deny_host_namespaces": {"params": {"allowed": []}}}}
	pod := json.patch(fx.hardened_pod, [{"op": "add", "path": "/spec/hostPID", "value": true}])
	d := decision with input as {"pod": pod, "airflow": fx.ke_airflow}
		with cfg.user as config
		with data.airflow.pod.policies.image_tag.warn as {"tagged"}
	[m.policy | some m in d.deny] == ["deny_host_namespaces", "pod_security"]
	[m.policy | some m in d.warn] == ["framework", "image_tag", "pod_security"]
}
