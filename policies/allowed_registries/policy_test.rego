package airflow.pod.policies.allowed_registries_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.allowed_registries

_config := fx.enable("allowed_registries", {"registries": ["docker.io/apache", "quay.io/acme/"]})

test_images_outside_the_registries_are_denied if {
	deny := allowed_registries.deny with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as _config
	deny == {concat("", [
		`container "base" uses image "python:3.11-slim" (docker.io/library/python), `,
		`which is not from an allowed registry`,
	])}
}

test_allowed_images_pass if {
	allowed_registries.deny == set() with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as _config
}

test_an_empty_list_allows_nothing if {
	count(allowed_registries.deny) == 2 with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as fx.enable("allowed_registries", {})
}

_pod(images) := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/containers", "value": [c |
	some i, image in images
	c := {"name": sprintf("c%d", [i]), "image": image}
]}])

_docker_hub := fx.enable("allowed_registries", {"registries": ["docker.io"]})

# The container runtime pulls these from the host "Evil", "Localhost",
# "ATTACKER-HOST": not Docker Hub (distribution/reference, lib/images.rego).
test_uppercase_first_components_are_hosts if {
	deny := allowed_registries.deny with input as {"pod": _pod(["Evil/x:1", "Localhost/x:1", "ATTACKER-HOST/x:1"])}
		with data.airflow.pod.lib.config.user as _docker_hub
	deny == {
		`container "c0" uses image "Evil/x:1" (Evil/x), which is not from an allowed registry`,
		`container "c1" uses image "Localhost/x:1" (Localhost/x), which is not from an allowed registry`,
		`container "c2" uses image "ATTACKER-HOST/x:1" (ATTACKER-HOST/x), which is not from an allowed registry`,
	}
}

test_docker_hub_names_pass if {
	pod := _pod(["python:3.11", "evil/x:1", "index.docker.io/apache/airflow:3", "docker.io/library/python"])
	allowed_registries.deny == set() with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _docker_hub
}

# What the runtime refuses cannot be judged, so it is denied.
test_invalid_references_are_denied if {
	long_tag := concat("", ["t" | some _ in numbers.range(1, 129)])
	pod := _pod(["python:3.11 ", "python:3.11\t", "python:3.11\n", "", concat(":", ["python", long_tag]), "a_b:5000/x", 7])
	deny := allowed_registries.deny with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _docker_hub
	deny == {
		`container "c0" uses image "python:3.11 ", which is not a valid image reference; cannot check its registry`,
		`container "c1" uses image "python:3.11\t", which is not a valid image reference; cannot check its registry`,
		`container "c2" uses image "python:3.11\n", which is not a valid image reference; cannot check its registry`,
		`container "c3" uses image "", which is not a valid image reference; cannot check its registry`,
		sprintf(
			`container "c4" uses image "python:%s", which is not a valid image reference; cannot check its registry`,
			[long_tag],
		),
		`container "c5" uses image "a_b:5000/x", which is not a valid image reference; cannot check its registry`,
		`container "c6" uses image 7, which is not a valid image reference; cannot check its registry`,
	}
}

# Go gives "a_b.c/x" an empty domain: no registry, so not allowed.
test_empty_domain_is_not_allowed if {
	deny := allowed_registries.deny with input as {"pod": _pod(["a_b.c/x"])}
		with data.airflow.pod.lib.config.user as _docker_hub
	deny == {`container "c0" uses image "a_b.c/x" (a_b.c/x), which is not from an allowed registry`}
}

test_padded_images_are_clipped if {
	image := concat("", ["evil.io/", concat("", [_pad | some _ in numbers.range(1, 600)])])
	[msg] := [m | some m in allowed_registries.deny] with input as {"pod": _pod([image])}
		with data.airflow.pod.lib.config.user as _docker_hub
	count(msg) < 400
	contains(msg, "…[600008 characters]")
}

_pad := concat("", ["<" | some _ in numbers.range(1, 1000)])

test_exempt_images_are_not_judged if {
	config := fx.enable("allowed_registries", {"registries": ["quay.io/acme"], "exempt_images": ["python:3.*"]})
	allowed_registries.deny == set() with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as config
}

test_ephemeral_containers_are_judged if {
	pod := fx.put(fx.worker_pod, "/spec/ephemeralContainers", [{"name": "debug", "image": "busybox:1.36"}])
	allowed_registries.deny == {concat("", [
		`ephemeralContainer "debug" uses image "busybox:1.36" (docker.io/library/busybox), `,
		`which is not from an allowed registry`,
	])} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _config
}

# Image volumes (spec.volumes[].image, Kubernetes 1.33+) are pulled by the
# same runtime as container images: judged alike, named by volume.
_with_volumes(pod, refs) := fx.put(pod, "/spec/volumes", array.concat(
	[{"name": "logs", "emptyDir": {}}],
	[{"name": sprintf("v%d", [i]), "image": {"reference": ref}} | some i, ref in refs],
))

test_image_volumes_are_judged if {
	pod := _with_volumes(fx.worker_pod, ["evil.example.net/payload", "docker.io/apache/airflow:3", "Evil/x:1"])
	deny := allowed_registries.deny with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _config
	deny == {
		`volume "v0" uses image "evil.example.net/payload" (evil.example.net/payload), which is not from an allowed registry`,
		`volume "v2" uses image "Evil/x:1" (Evil/x), which is not from an allowed registry`,
	}
}

test_invalid_image_volume_references_are_denied if {
	pod := _with_volumes(fx.worker_pod, ["quay.io/acme/x:1 ", 7])
	deny := allowed_registries.deny with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _config
	deny == {
		`volume "v0" uses image "quay.io/acme/x:1 ", which is not a valid image reference; cannot check its registry`,
		`volume "v1" uses image 7, which is not a valid image reference; cannot check its registry`,
	}
}

test_exempt_images_exempt_image_volumes_too if {
	config := fx.enable("allowed_registries", {
		"registries": ["docker.io/apache"],
		"exempt_images": ["registry.example.com/tools/*"],
	})
	pod := _with_volumes(fx.worker_pod, ["registry.example.com/tools/jq:1", "registry.example.com/other:1"])
	deny := allowed_registries.deny with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
	deny == {concat("", [
		`volume "v1" uses image "registry.example.com/other:1" (registry.example.com/other), `,
		`which is not from an allowed registry`,
	])}
}

# A registry allows whole path components below it, never a longer host or
# component that merely starts with the same text.
test_registries_match_whole_components if {
	images := ["quay.io.evil.example/x:1", "quay.io/acmecorp/x:1", "docker.io/apachecorp/x:1"]
	count(allowed_registries.deny) == 3 with input as {"pod": _pod(images)}
		with data.airflow.pod.lib.config.user as _config
}
