# regal ignore:directory-package-mismatch
package airflow.pod.lib.config

# Configuration as data.
#
#   effective = deep-merge(shipped, user)
#
# shipped: every policy's Rego `defaults` ({"enabled", "params", "exempt"})
#          under "policies", and an empty global "exempt".
# user:    data.airflow.pod.config - the organisation's deltas (a data file or
#          bundle). Objects merge key by key at every depth (object.union);
#          any other value, arrays included, replaces the default. A null
#          replaces too: use it to drop a named exemption or a default key.

default user := {}

# regal ignore:unresolved-reference
user := data.airflow.pod.config if is_object(data.airflow.pod.config)

_skeleton := {"enabled": false, "params": {}, "exempt": {}}

shipped := {
	"exempt": {},
	"policies": {name: object.union(_skeleton, defaults) |
		some name

		# regal ignore:unresolved-reference
		defaults := data.airflow.pod.policies[name].defaults
		is_object(defaults)
	},
}

effective := object.union(shipped, user)

# params(name): a policy's merged parameters.
params(name) := effective.policies[name].params

# enabled(name): the merged `enabled` flag is exactly true.
enabled(name) if effective.policies[name].enabled == true

# Policy names the user configures that no policy package defines.
unknown_policies contains name if {
	some name, _ in object.get(user, "policies", {})
	not shipped.policies[name]
}
