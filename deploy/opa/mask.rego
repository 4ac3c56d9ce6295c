# Decision-log masking for airflow-opa-mutation.
#
# Load this file next to the policies when OPA's decision logs are on (console or a remote
# service), so that no secret a pod carries reaches the logs. OPA evaluates data.system.log.mask
# for every decision-log event (the event is the input; the decision's own input is input.input)
# and erases each JSON pointer it returns; the event then lists them under "erased".
#
# Erased: every env var value of every container, init container and ephemeral container; the
# value of every HTTP header named Authorization (or Proxy-Authorization) in probes and lifecycle
# hooks; annotation values that hold a bearer or basic credential; and, in the decision's result,
# the value of every patch op that writes into an env list (policies that inject settings) and the
# env values and Authorization headers inside any value a patch op writes (a sidecar container,
# a list of containers, a whole spec or pod).
#
# OPA masks by concrete JSON pointers only (no wildcards), so the pointers are generated from the
# event itself. See https://www.openpolicyagent.org/docs/management-decision-logs

# OPA reads the mask from this package, wherever the file lives.
package system.log

container_kinds := ["containers", "initContainers", "ephemeralContainers"]

probe_kinds := ["livenessProbe", "readinessProbe", "startupProbe"]

lifecycle_hooks := ["postStart", "preStop"]

# METADATA
# title: mask
# description: JSON pointers OPA erases from each decision-log event before it is logged.
# entrypoint: true
# scope: document
mask contains sprintf("/input/pod/spec/%s/%d/env/%d/value", [kind, i, j]) if {
	some kind in container_kinds
	some i, container in input.input.pod.spec[kind]
	some j, env in container.env
	is_string(env.value)
}

# Authorization headers of HTTP probes.
mask contains sprintf("/input/pod/spec/%s/%d/%s/httpGet/httpHeaders/%d/value", [kind, i, probe, j]) if {
	some kind in container_kinds
	some i, container in input.input.pod.spec[kind]
	some probe in probe_kinds
	some j, header in container[probe].httpGet.httpHeaders
	authorization_header(header)
}

# Authorization headers of lifecycle hooks.
mask contains sprintf("/input/pod/spec/%s/%d/lifecycle/%s/httpGet/httpHeaders/%d/value", [kind, i, hook, j]) if {
	some kind in container_kinds
	some i, container in input.input.pod.spec[kind]
	some hook in lifecycle_hooks
	some j, header in container.lifecycle[hook].httpGet.httpHeaders
	authorization_header(header)
}

# Annotations that carry a credential ("Authorization: Bearer ...", "Basic ...").
mask contains concat("/", ["/input/pod/metadata/annotations", escape(key)]) if {
	some key, value in input.input.pod.metadata.annotations
	credential(key, value)
}

# Values the decision's patch writes into an env list.
mask contains sprintf("/result/patch/%d/value", [i]) if {
	some i, op in input.result.patch
	regex.match(`^/spec/(containers|initContainers|ephemeralContainers)/[^/]+/env(/|$)`, op.path)
	"value" in object.keys(op)
}

# Env values and Authorization header values anywhere inside what a patch op writes: a whole
# container, a list of containers, the whole spec or pod.
mask contains concat("", [sprintf("/result/patch/%d/value", [i]), pointer(path)]) if {
	some i, op in input.result.patch
	walk(op.value, [path, leaf])
	secret_leaf(op.value, path, leaf)
}

# [..., "env", j, "value"]: an env var's value.
secret_leaf(_, path, leaf) if {
	n := count(path)
	n >= 3
	path[n - 3] == "env"
	is_number(path[n - 2])
	path[n - 1] == "value"
	is_string(leaf)
}

# [..., "httpHeaders", j, "value"] of a header named Authorization.
secret_leaf(root, path, leaf) if {
	n := count(path)
	n >= 3
	path[n - 3] == "httpHeaders"
	path[n - 1] == "value"
	is_string(leaf)
	authorization_header(object.get(root, array.slice(path, 0, n - 1), {}))
}

pointer(path) := concat("", [concat("/", ["", token(p)]) | some p in path])

token(p) := escape(p) if is_string(p)

token(p) := format_int(p, 10) if is_number(p)

authorization_header(header) if lower(header.name) in {"authorization", "proxy-authorization"}

credential(key, _) if contains(lower(key), "authorization")

credential(_, value) if regex.match(`^(?i)\s*(authorization:\s*)?(bearer|basic)\s+\S`, value)

# RFC 6901: "~" is written "~0" and "/" is written "~1" inside a reference token.
escape(key) := replace(replace(key, "~", "~0"), "/", "~1")
