package airflow.pod.policies.image_tag_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.image_tag

_pod(images) := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/containers", "value": [c |
	some i, image in images
	c := {"name": sprintf("c%d", [i]), "image": image}
]}])

_digest := "sha256:9f8c0e1d2b3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"

test_untagged_and_latest_images_warn if {
	pod := _pod([
		"python", "python:latest", "python:3.11",
		concat("@", ["python", _digest]), concat("@", ["python:latest", _digest]),
	])
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

# References the container runtime refuses pin nothing: a finding under the
# configured action.
test_invalid_references_are_findings if {
	pod := _pod(["python:3.11 ", "python:3.11\n", "", concat("", ["python:", _long_tag]), "python@sha256:ab"])
	image_tag.warn == {
		`container "c0" image "python:3.11 " is not a valid image reference; pin a version or a digest`,
		`container "c1" image "python:3.11\n" is not a valid image reference; pin a version or a digest`,
		`container "c2" image "" is not a valid image reference; pin a version or a digest`,
		sprintf(`container "c3" image "python:%s" is not a valid image reference; pin a version or a digest`, [_long_tag]),
		`container "c4" image "python@sha256:ab" is not a valid image reference; pin a version or a digest`,
	} with input as {"pod": pod}
	config := {"policies": {"image_tag": {"params": {"action": "deny"}}}}
	count(image_tag.deny) == 5 with input as {"pod": pod} with data.airflow.pod.lib.config.user as config
}

_long_tag := concat("", ["t" | some _ in numbers.range(1, 129)])

test_non_string_image_is_a_finding if {
	msg := `container "c0" image 42 is not a valid image reference; pin a version or a digest`
	image_tag.warn == {msg} with input as {"pod": _pod([42])}
}

# A padded image is echoed clipped (lib/messages.rego).
test_long_images_are_clipped if {
	pad := concat("", ["<" | some _ in numbers.range(1, 1000)])
	image := concat("", ["evil.io/", concat("", [pad | some _ in numbers.range(1, 10)])])
	[msg] := [m | some m in image_tag.warn] with input as {"pod": _pod([image])}
	count(msg) < 400
	contains(msg, "…[10008 characters]")
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

# Image volumes pin (or not) like container images, named by volume.
test_image_volumes_are_judged if {
	volumes := [
		{"name": "model", "image": {"reference": "registry.example.com/models/bert"}},
		{"name": "tools", "image": {"reference": "registry.example.com/tools:latest", "pullPolicy": "Always"}},
		{"name": "pinned", "image": {"reference": concat("@", ["registry.example.com/tools", _digest])}},
		{"name": "bad", "image": {"reference": "tools:1 "}},
		{"name": "exempt", "image": {"reference": "busybox"}},
		{"name": "logs", "emptyDir": {}},
	]
	pod := fx.put(fx.hardened_pod, "/spec/volumes", volumes)
	image_tag.warn == {
		`volume "model" image "registry.example.com/models/bert" has no tag (implicitly :latest); pin a version or a digest`,
		`volume "tools" image "registry.example.com/tools:latest" uses the mutable tag "latest"; pin a version or a digest`,
		`volume "bad" image "tools:1 " is not a valid image reference; pin a version or a digest`,
	} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as fx.params("image_tag", {"exempt_images": ["busybox"]})
}
