package airflow.pod.policies.airflow_labels_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.airflow_labels

_mapping := {
	"etl_daily": {"team": "data-eng", "cost-center": "cc-1042"},
	"etl_*": {"team": "data-platform", "cost-center": "cc-1000"},
	"ml.*": {"team": "ml", "cost-center": "cc-2001", "example.com/owner": "ml-infra"},
	"*": {"team": "unowned"},
}

_config := fx.enable("airflow_labels", {"mapping": _mapping})

test_exact_dag_id_wins if {
	airflow_labels.mapping_key == "etl_daily" with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as _config
}

test_longest_glob_wins if {
	airflow_labels.mapping_key == "etl_*" with input as {"pod": fx.worker_pod, "airflow": {"dag_id": "etl_hourly"}}
		with data.airflow.pod.lib.config.user as _config
	airflow_labels.mapping_key == "*" with input as {"pod": fx.worker_pod, "airflow": {"dag_id": "reports"}}
		with data.airflow.pod.lib.config.user as _config
}

test_labels_are_added_with_escaped_keys if {
	ops := airflow_labels.patch with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
		with data.airflow.pod.lib.config.user as _config
	ops == {
		{"op": "add", "path": "/metadata/labels/cost-center", "value": "cc-2001"},
		{"op": "add", "path": "/metadata/labels/example.com~1owner", "value": "ml-infra"},
		{"op": "add", "path": "/metadata/labels/team", "value": "ml"},
	}
}

test_present_labels_are_kept if {
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/metadata/labels/team", "value": "core"}])
	ops := airflow_labels.patch with input as {"pod": pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as _config
	ops == {{"op": "add", "path": "/metadata/labels/cost-center", "value": "cc-1042"}}
}

test_no_dag_id_or_no_match_means_no_labels if {
	airflow_labels.patch == set() with input as {"pod": fx.worker_pod, "airflow": {}}
		with data.airflow.pod.lib.config.user as _config
	airflow_labels.patch == set() with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as fx.enable("airflow_labels", {"mapping": {"other": {"team": "x"}}})
}

test_protected_and_invalid_labels_are_skipped_with_a_warning if {
	mapping := {"etl_daily": {"dag_id": "other", "team": "not a valid value!", "tier": "gold", "gone": null}}
	config := fx.enable("airflow_labels", {"mapping": mapping})
	tier := {"op": "add", "path": "/metadata/labels/tier", "value": "gold"}
	airflow_labels.patch == {tier} with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
	airflow_labels.warn == {
		`mapping "etl_daily" sets the Airflow label "dag_id", which is never changed; ignored`,
		`mapping "etl_daily" sets label "team" to "not a valid value!", which is not a valid label value; ignored`,
	} with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
}

test_static_labels_go_on_every_pod_the_mapping_wins if {
	config := fx.enable("airflow_labels", {
		"labels": {"platform": "airflow", "team": "unowned", "dag_id": "x"},
		"mapping": {"etl_*": {"team": "data"}},
	})
	airflow_labels.patch == {
		{"op": "add", "path": "/metadata/labels/platform", "value": "airflow"},
		{"op": "add", "path": "/metadata/labels/team", "value": "data"},
	} with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
	warning := `labels sets the Airflow label "dag_id", which is never changed; ignored`
	airflow_labels.warn == {warning} with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
	airflow_labels.patch == {
		{"op": "add", "path": "/metadata/labels/platform", "value": "airflow"},
		{"op": "add", "path": "/metadata/labels/team", "value": "unowned"},
	} with input as {"pod": fx.worker_pod, "airflow": {}}
		with data.airflow.pod.lib.config.user as config
}

test_a_pod_without_labels_gets_a_label_map if {
	pod := json.remove(fx.kpo_pod, ["metadata/labels"])
	config := fx.enable("airflow_labels", {"labels": {"platform": "airflow"}})
	ops := airflow_labels.patch with input as {"pod": pod, "airflow": {}}
		with data.airflow.pod.lib.config.user as config
	ops == {
		{"op": "add", "path": "/metadata/labels", "value": {}},
		{"op": "add", "path": "/metadata/labels/platform", "value": "airflow"},
	}
}

# A pod without a labels map gets one through the whole decision: the
# framework protects the map only where the pod has one (lib/framework.rego).
test_a_pod_without_labels_gets_a_labels_map if {
	pod := json.patch(fx.worker_pod, [{"op": "remove", "path": "/metadata/labels"}])
	config := fx.enable("airflow_labels", {"labels": {"team": "core", "tier": "batch"}})
	d := data.airflow.pod.decision with input as {"pod": pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
	d.deny == []
	json.patch(pod, d.patch).metadata.labels == {"team": "core", "tier": "batch"}
}

# An Airflow label the pod lacks is not added either: Airflow's labels are
# Airflow's to write (the framework would drop the op and deny the pod).
test_an_absent_airflow_label_is_not_added if {
	pod := json.remove(fx.worker_pod, ["metadata/labels/dag_id"])
	config := fx.enable("airflow_labels", {"labels": {"dag_id": "spoofed", "tier": "gold"}})
	tier := {"op": "add", "path": "/metadata/labels/tier", "value": "gold"}
	airflow_labels.patch == {tier} with input as {"pod": pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
}
