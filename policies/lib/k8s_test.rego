# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
package airflow.pod.lib.k8s_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.lib.k8s

test_accessors if {
	k8s.namespace == "ml-jobs" with input as {"pod": fx.kpo_pod}
	k8s.labels.task_id == "fit_model" with input as {"pod": fx.kpo_pod}
	k8s.annotations == {} with input as {"pod": fx.kpo_pod}
	k8s.airflow == fx.kpo_airflow with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
	k8s.namespace == "" with input as {}
}

test_containers_come_first_then_init_containers if {
	entries := k8s.containers with input as {"pod": fx.kpo_pod}
	[[e.path, e.label] | some e in entries] == [
		["/spec/containers/0", `container "base"`],
		["/spec/initContainers/0", `initContainer "fetch-data"`],
	]
	[e.name | some e in k8s.selected(false)] == ["base"] with input as {"pod": fx.kpo_pod}
}

test_ephemeral_containers_are_judged_not_mutated if {
	pod := fx.put(fx.kpo_pod, "/spec/ephemeralContainers", [{"name": "debug", "image": "busybox:1.36"}])
	entries := k8s.containers with input as {"pod": pod}
	[[e.field, e.path, e.label] | some e in entries] == [
		["containers", "/spec/containers/0", `container "base"`],
		["initContainers", "/spec/initContainers/0", `initContainer "fetch-data"`],
		["ephemeralContainers", "/spec/ephemeralContainers/0", `ephemeralContainer "debug"`],
	]
	[e.name | some e in k8s.selected(true)] == ["base", "fetch-data"] with input as {"pod": pod}
}
