# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
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
