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

test_windows_pods if {
	k8s.windows with input as {"pod": fx.put(fx.worker_pod, "/spec/os", {"name": "windows"})}
	not k8s.windows with input as {"pod": fx.put(fx.worker_pod, "/spec/os", {"name": "linux"})}
	not k8s.windows with input as {"pod": fx.worker_pod}
}

test_seccomp_annotation_of_a_container_else_the_pod if {
	annotations := {
		"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
		"container.seccomp.security.alpha.kubernetes.io/base": "runtime/default",
	}
	pod := fx.put(fx.worker_pod, "/metadata/annotations", annotations)
	k8s.seccomp_annotation("base") == "runtime/default" with input as {"pod": pod}
	k8s.seccomp_annotation("sidecar") == "unconfined" with input as {"pod": pod}
	not k8s.seccomp_annotation("base") with input as {"pod": fx.worker_pod}
}

test_seccomp_matches_by_the_api_server_rule if {
	k8s.seccomp_matches("runtime/default", {"type": "RuntimeDefault"})
	k8s.seccomp_matches("docker/default", {"type": "RuntimeDefault"})
	k8s.seccomp_matches("unconfined", {"type": "Unconfined"})
	k8s.seccomp_matches("localhost/audit.json", {"type": "Localhost", "localhostProfile": "audit.json"})
	not k8s.seccomp_matches("unconfined", {"type": "RuntimeDefault"})
	not k8s.seccomp_matches("localhost/audit.json", {"type": "RuntimeDefault"})
	not k8s.seccomp_matches("localhost/other.json", {"type": "Localhost", "localhostProfile": "audit.json"})
	not k8s.seccomp_matches("runtime/default", {"type": "Localhost"})
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

# Every image the runtime pulls: containers of each kind, then image volumes,
# each with the pointer of its reference and of its pull policy's holder.
test_images_are_containers_then_image_volumes if {
	pod := json.patch(fx.kpo_pod, [
		{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debug", "image": "busybox:1.36"}]},
		{"op": "add", "path": "/spec/containers/-", "value": {"name": "no-image"}},
		{"op": "add", "path": "/spec/volumes", "value": [
			{"name": "logs", "emptyDir": {}},
			{"name": "model", "image": {"reference": "quay.io/acme/model:7", "pullPolicy": "Always"}},
			{"name": "empty", "image": {}},
			{"image": {"reference": "nameless:1"}},
		]},
	])
	entries := k8s.images with input as {"pod": pod}
	[[e.kind, e.label, e.image] | some e in entries] == [
		["container", `container "base"`, "python:3.11-slim"],
		["initContainer", `initContainer "fetch-data"`, "quay.io/acme/fetcher:1.4"],
		["ephemeralContainer", `ephemeralContainer "debug"`, "busybox:1.36"],
		["volume", `volume "model"`, "quay.io/acme/model:7"],
		["volume", `volume ""`, "nameless:1"],
	]
	[[e.path, e.source_path, e.pull_policy] | some e in entries] == [
		["/spec/containers/0/image", "/spec/containers/0", "imagePullPolicy"],
		["/spec/initContainers/0/image", "/spec/initContainers/0", "imagePullPolicy"],
		["/spec/ephemeralContainers/0/image", "/spec/ephemeralContainers/0", "imagePullPolicy"],
		["/spec/volumes/1/image/reference", "/spec/volumes/1/image", "pullPolicy"],
		["/spec/volumes/3/image/reference", "/spec/volumes/3/image", "pullPolicy"],
	]
	entries[3].source == {"reference": "quay.io/acme/model:7", "pullPolicy": "Always"}
	mutated := k8s.selected_images(false) with input as {"pod": pod}
	[e.label | some e in mutated] == [`container "base"`, `volume "model"`, `volume ""`]
	with_init := k8s.selected_images(true) with input as {"pod": pod}
	[e.label | some e in with_init] == [
		`container "base"`,
		`initContainer "fetch-data"`,
		`volume "model"`,
		`volume ""`,
	]
	k8s.images == [] with input as {}
}
