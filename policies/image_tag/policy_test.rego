# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
package airflow.pod.policies.image_tag_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.image_tag

_pod(images) := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/containers", "value": [c |
	some i, image in images
	c := {"name": sprintf("c%d", [i]), "image": image}
]}])

test_untagged_and_latest_images_warn if {
	pod := _pod(["python", "python:latest", "python:3.11", "python@sha256:ab", "python:latest@sha256:ab"])
	image_tag.warn == {
		`container "c0" image "python" has no tag (implicitly :latest); pin a version or a digest`,
		`container "c1" image "python:latest" uses the mutable tag "latest"; pin a version or a digest`,
	} with input as {"pod": pod}
	not image_tag.deny with input as {"pod": pod}
}

test_action_deny_denies if {
	config := {"policies": {"image_tag": {"params": {"action": "deny", "forbidden_tags": ["latest", "main"]}}}}
	msg := `container "c0" image "app:main" uses the mutable tag "main"; pin a version or a digest`
	image_tag.deny == {msg} with input as {"pod": _pod(["app:main"])}
		with data.airflow.pod.lib.config.user as config
	not image_tag.warn with input as {"pod": _pod(["app:main"])}
		with data.airflow.pod.lib.config.user as config
}

test_an_invalid_action_is_denied if {
	config := {"policies": {"image_tag": {"params": {"action": "block"}}}}
	msg := `invalid configuration: action must be "warn" or "deny", got "block"`
	image_tag.deny == {msg} with data.airflow.pod.lib.config.user as config
}

test_pinned_images_pass if {
	image_tag.warn == set() with input as {"pod": fx.worker_pod}
}

test_exempt_images_are_not_judged if {
	config := fx.params("image_tag", {"exempt_images": ["python:*", "busybox"]})
	pod := _pod(["python:latest", "busybox", "app"])
	warning := `container "c2" image "app" has no tag (implicitly :latest); pin a version or a digest`
	image_tag.warn == {warning} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}

test_ephemeral_containers_are_judged if {
	pod := fx.put(fx.hardened_pod, "/spec/ephemeralContainers", [{"name": "debug", "image": "busybox"}])
	warning := concat("", [
		`ephemeralContainer "debug" image "busybox" has no tag (implicitly :latest); `,
		"pin a version or a digest",
	])
	image_tag.warn == {warning} with input as {"pod": pod}
}
