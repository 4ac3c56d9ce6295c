package airflow.pod.policies.env_injection

# Appends configured environment variables to every container that does not
# define them yet. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.ops

defaults := {
	"enabled": false,
	"params": {
		# NAME -> "value" | {"valueFrom": {...}}; null drops a default
		"env": {},
		"init_containers": true,
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"env": "object", "init_containers": "boolean"}

params := config.params("env_injection")

variables contains _variable(name, spec) if {
	some name, spec in params.env
	spec != null
}

_variable(name, spec) := {"name": name, "value": spec} if is_string(spec)

_variable(name, spec) := {"name": name, "value": sprintf("%v", [spec])} if {
	not is_string(spec)
	not is_object(spec)
}

_variable(name, spec) := object.union(spec, {"name": name}) if is_object(spec)

patch contains op if {
	some entry in k8s.selected(params.init_containers)
	present := {e.name | some e in object.get(entry.container, "env", [])}
	some variable in variables
	not variable.name in present
	some op in ops.append_if_absent(entry.container, entry.path, ["env"], variable)
}
