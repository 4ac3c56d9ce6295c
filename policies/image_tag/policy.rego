package airflow.pod.policies.image_tag

# Warns (or denies, with action: deny) on images without a tag or with a
# mutable tag such as :latest, and on images that are no valid reference:
# container images of every kind and image volumes (k8s.images).
# Digest-pinned images always pass. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.images
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages

defaults := {
	"enabled": true,
	"params": {
		"action": "warn",
		"forbidden_tags": ["latest"],
		# globs on the image as written; matching containers and image
		# volumes are not judged
		"exempt_images": [],
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"action": "string", "forbidden_tags": "string[]", "exempt_images": "string[]"}

params := config.params("image_tag")

findings contains msg if {
	some entry in k8s.images
	ref := images.parse(entry.image)
	ref.digest == ""
	ref.tag in _mutable_tags
	not match.any_glob(params.exempt_images, entry.image)
	msg := _finding(entry.label, messages.clip(entry.image), ref.tag)
}

# A reference the runtime's parser refuses pins nothing.
findings contains msg if {
	some entry in k8s.images
	image := entry.image
	not images.parse(image)
	msg := sprintf(
		"%s image %s is not a valid image reference; pin a version or a digest",
		[entry.label, messages.quote(image)],
	)
}

# The tags that pin nothing: none at all (implicitly :latest), and the
# forbidden ones. Checked before any message is built: most images pass.
_mutable_tags := {""} | {tag | some tag in params.forbidden_tags}

_finding(label, image, "") := sprintf(
	"%s image %q has no tag (implicitly :latest); pin a version or a digest",
	[label, image],
)

_finding(label, image, tag) := msg if {
	tag in params.forbidden_tags
	msg := sprintf("%s image %q uses the mutable tag %q; pin a version or a digest", [label, image, tag])
}

warn := findings if params.action == "warn"

deny := findings if params.action == "deny"

deny := {msg} if {
	not params.action in {"warn", "deny"}
	msg := sprintf("invalid configuration: action must be \"warn\" or \"deny\", got %s", [json.marshal(params.action)])
}
