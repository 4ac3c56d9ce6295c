package airflow.pod.policies.resource_defaults

# Adds default resource requests and limits where a container has none.
# See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.ops

defaults := {
	"enabled": false,
	"params": {
		"requests": {},
		"limits": {},
		"init_containers": true,
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"requests": "object", "limits": "object", "init_containers": "boolean"}

params := config.params("resource_defaults")

# Quantities are written as strings, the form the Kubernetes API returns.
_quantity(q) := q if is_string(q)

_quantity(q) := sprintf("%v", [q]) if is_number(q)

_requests[name] := _quantity(q) if {
	some name, q in params.requests
	q != null
}

_limits[name] := _quantity(q) if {
	some name, q in params.limits
	q != null
}

# A request is added only when the container has neither a request nor a
# limit for the resource (Kubernetes copies a lone limit into the request).
patch contains op if {
	some entry in k8s.selected(params.init_containers)
	resources := object.get(entry.container, "resources", {})
	some name, quantity in _requests
	not ops.has(resources, ["requests", name])
	not ops.has(resources, ["limits", name])
	some op in ops.add_if_absent(entry.container, entry.path, ["resources", "requests", name], quantity)
}

# A limit is added where none is set; it is raised to the container's
# request (its own or the default being added) when that is larger, so the
# result stays valid.
patch contains op if {
	some entry in k8s.selected(params.init_containers)
	resources := object.get(entry.container, "resources", {})
	some name, quantity in _limits
	not ops.has(resources, ["limits", name])
	limit := _at_least(quantity, _request(resources, name))
	some op in ops.add_if_absent(entry.container, entry.path, ["resources", "limits", name], limit)
}

_request(resources, name) := resources.requests[name] if {
	ops.has(resources, ["requests", name])
} else := _requests[name] if {
	ops.has(_requests, [name])
} else := ""

# Unparsable quantities compare as "not larger": the default limit stays.
_at_least(limit, request) := request if {
	request != ""
	units.parse(request) > units.parse(limit)
} else := limit
