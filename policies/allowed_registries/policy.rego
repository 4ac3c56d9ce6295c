package airflow.pod.policies.allowed_registries

# Denies images outside the allowed registries, and images that are no valid
# reference: container images of every kind and image volumes (k8s.images).
# Images are parsed like the container runtime parses them
# (lib/images.rego): "Evil/x:1" comes from the host "Evil". Judged after the
# patch, so images the library rewrites to a mirror are judged by the
# mirror. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.images
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages

defaults := {
	"enabled": false,
	# "registry" or "registry/path" prefixes, e.g. "registry.example.com",
	# "docker.io/library" (images are fully qualified before matching)
	"params": {
		"registries": [],
		# globs on the image as written; matching containers and image
		# volumes are not judged
		"exempt_images": [],
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"registries": "string[]", "exempt_images": "string[]"}

params := config.params("allowed_registries")

deny contains msg if {
	some entry in k8s.images
	image := entry.image
	not match.any_glob(params.exempt_images, image)
	ref := images.parse(image)
	not _allowed(ref.name)
	msg := sprintf(
		"%s uses image %q (%s), which is not from an allowed registry",
		[entry.label, messages.clip(image), messages.clip(ref.name)],
	)
}

# A reference the runtime's parser would refuse (or read differently from
# what a looser parser would) cannot be judged: denied.
deny contains msg if {
	some entry in k8s.images
	image := entry.image
	not images.parse(image)
	msg := sprintf(
		"%s uses image %s, which is not a valid image reference; cannot check its registry",
		[entry.label, messages.quote(image)],
	)
}

_allowed(name) if {
	some prefix in params.registries
	images.under(name, prefix)
}
