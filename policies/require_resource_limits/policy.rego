package airflow.pod.policies.require_resource_limits

# Denies containers without limits for the configured resources (and, when
# configured, without requests, or with limits above a maximum). Judged after
# the patch, so values added by resource_defaults count. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s

defaults := {
	"enabled": false,
	"params": {
		"resources": ["memory"],
		"init_containers": true,
		# also require requests for `resources` (Kyverno's require-requests-limits)
		"require_requests": false,
		# resource -> largest limit allowed, e.g. {"memory": "8Gi"} (Gatekeeper's container-limits)
		"max": {},
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"resources": "string[]", "init_containers": "boolean", "require_requests": "boolean", "max": "object"}

params := config.params("require_resource_limits")

# Ephemeral containers are never judged: Kubernetes forbids resources on them.
deny contains sprintf("%s has no %s limit", [entry.label, resource]) if {
	some entry in k8s.selected(params.init_containers)
	some resource in params.resources
	not entry.container.resources.limits[resource]
}

deny contains sprintf("%s has no %s request", [entry.label, resource]) if {
	params.require_requests == true
	some entry in k8s.selected(params.init_containers)
	some resource in params.resources
	not entry.container.resources.requests[resource]
}

deny contains sprintf(
	"%s has a %s limit of %s, above the maximum %s",
	[entry.label, resource, limit, maximum],
) if {
	some resource, maximum in params.max
	some entry in k8s.selected(params.init_containers)
	limit := entry.container.resources.limits[resource]
	_quantity(limit) > _quantity(maximum)
}

deny contains sprintf(
	"invalid configuration: max %s is %s, not a Kubernetes quantity",
	[resource, json.marshal(maximum)],
) if {
	some resource, maximum in params.max
	not _quantity(maximum)
}

# _quantity(q): a Kubernetes quantity ("500m", "1Gi", "2", 1.5) as a number.
_quantity(q) := q if is_number(q)

_quantity(q) := units.parse(q) if is_string(q)
