package airflow.pod.policies.image_registry_mirror_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.image_registry_mirror

_mirrors := {
	"docker.io": "mirror.example.com/dockerhub/",
	"quay.io/acme": "mirror.example.com/acme",
	"quay.io": "mirror.example.com/quay",
	"ghcr.io": null,
}

_python := "mirror.example.com/dockerhub/library/python:3.11-slim"

_dockerhub_airflow := "mirror.example.com/dockerhub/apache/airflow:3.0.2"

_digest := "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

_config := fx.enable("image_registry_mirror", {"mirrors": _mirrors})

test_rewrite_keeps_repository_tag_and_digest if {
	cases := {
		"python": "mirror.example.com/dockerhub/library/python",
		"python:3.11-slim": "mirror.example.com/dockerhub/library/python:3.11-slim",
		concat("@", ["apache/airflow:3.0.2", _digest]): concat("@", [_dockerhub_airflow, _digest]),
		"index.docker.io/apache/airflow": "mirror.example.com/dockerhub/apache/airflow",
		"quay.io/acme/fetcher:1.4": "mirror.example.com/acme/fetcher:1.4",
		"quay.io/other/tool:2": "mirror.example.com/quay/other/tool:2",
	}
	every image, want in cases {
		image_registry_mirror.rewrite(image) == want with data.airflow.pod.lib.config.user as _config
	}
}

test_other_registries_and_mirrored_images_are_left_alone if {
	images := ["registry.example.com/team/app:1", "ghcr.io/org/app:1", "mirror.example.com/dockerhub/library/python:3"]
	every image in images {
		not image_registry_mirror.rewrite(image) with data.airflow.pod.lib.config.user as _config
	}
}

test_patch_replaces_images_of_all_containers if {
	ops := image_registry_mirror.patch with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as _config
	ops == {
		{"op": "replace", "path": "/spec/containers/0/image", "value": _python},
		{"op": "replace", "path": "/spec/initContainers/0/image", "value": "mirror.example.com/acme/fetcher:1.4"},
	}
}

test_a_mirrored_pod_is_left_alone if {
	pod := json.patch(fx.kpo_pod, [
		{"op": "replace", "path": "/spec/containers/0/image", "value": _python},
		{"op": "replace", "path": "/spec/initContainers/0/image", "value": "mirror.example.com/acme/fetcher:1.4"},
	])
	image_registry_mirror.patch == set() with input as {"pod": pod} with data.airflow.pod.lib.config.user as _config
}

# Image volumes are pulled like container images: rewritten alike, at their
# reference. init_containers leaves them alone (they are no init container).
test_image_volumes_are_rewritten if {
	volumes := [
		{"name": "logs", "emptyDir": {}},
		{"name": "model", "image": {"reference": "quay.io/acme/model:7", "pullPolicy": "IfNotPresent"}},
		{"name": "mirrored", "image": {"reference": _python}},
		{"name": "other", "image": {"reference": "registry.example.com/team/app:1"}},
	]
	pod := fx.put(fx.kpo_pod, "/spec/volumes", volumes)
	config := fx.enable("image_registry_mirror", {"mirrors": _mirrors, "init_containers": false})
	ops := image_registry_mirror.patch with input as {"pod": pod} with data.airflow.pod.lib.config.user as config
	ops == {
		{"op": "replace", "path": "/spec/containers/0/image", "value": _python},
		{"op": "replace", "path": "/spec/volumes/1/image/reference", "value": "mirror.example.com/acme/model:7"},
	}
}

# A mirror that lies under the registry it mirrors: its images are mirrored
# already, never rewritten a second time.
test_a_mirror_under_its_source_is_not_mirrored_again if {
	config := fx.enable("image_registry_mirror", {"mirrors": {"registry.example.com": "registry.example.com/cache"}})
	source := "registry.example.com/team/app:1"
	cached := "registry.example.com/cache/team/app:1"
	image_registry_mirror.rewrite(source) == cached with data.airflow.pod.lib.config.user as config
	not image_registry_mirror.rewrite(cached) with data.airflow.pod.lib.config.user as config
}
