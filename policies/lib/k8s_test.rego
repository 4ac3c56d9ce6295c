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

# Container names in labels are quoted and clipped (lib/messages.rego).
test_labels_quote_and_clip_names if {
	long := concat("", ["n" | some _ in numbers.range(1, 300)])
	pod := {"spec": {"containers": [{"name": "a\"b\nc"}, {"name": long}]}}
	[e.label | some e in k8s.containers] == [
		`container "a\"b\nc"`,
		concat("", [`container "`, substring(long, 0, 256), `…[300 characters]"`]),
	] with input as {"pod": pod}
}
