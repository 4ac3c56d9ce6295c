package airflow.pod.policies.image_registry_mirror

# Rewrites images from configured registries to a mirror, keeping the
# repository, tag and digest: container images and image volumes
# (k8s.selected_images). See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.images
import data.airflow.pod.lib.k8s

defaults := {
	"enabled": false,
	"params": {
		# source ("registry" or "registry/path") -> mirror ("host[/path]")
		"mirrors": {},
		"init_containers": true,
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"mirrors": "object", "init_containers": "boolean"}

params := config.params("image_registry_mirror")

_mirrors[source] := trim_suffix(mirror, "/") if {
	some source, mirror in params.mirrors
	is_string(mirror)
}

patch contains {"op": "replace", "path": entry.path, "value": image} if {
	some entry in k8s.selected_images(params.init_containers)
	image := rewrite(entry.image)
	image != entry.image
}

# rewrite(image): the mirrored reference, or undefined when no source
# matches. Images already under a mirror are never rewritten again.
rewrite(image) := concat("", [_mirrors[source], "/", rest, images.suffix(ref)]) if {
	not _mirrored(image)
	ref := images.parse(image)
	source := _source(ref.name)
	rest := trim_prefix(ref.name, concat("", [trim_suffix(source, "/"), "/"]))
}

_mirrored(image) if {
	some mirror in _mirrors
	startswith(image, concat("", [mirror, "/"]))
}

# The longest configured source the name lies under (ties: the smallest).
_source(name) := min({source |
	some source in candidates
	count(source) == longest
}) if {
	candidates := {source |
		some source, _ in _mirrors
		images.under(name, source)
		name != trim_suffix(source, "/")
	}
	longest := max({count(s) | some s in candidates})
}
