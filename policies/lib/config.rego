package airflow.pod.lib.config

# Configuration as data.
#
#   settings = deep-merge(shipped, user.policies)
#
# shipped: every policy's Rego `defaults` ({"enabled", "params"}, optionally
#          "exempt"), by policy name.
# user:    data.airflow.pod.config - the organisation's deltas (a data file or
#          bundle): {"exempt": {<name>: <matcher>}, "policies": {<policy>: {...}}}.
#          Objects merge key by key at every depth (object.union); any other
#          value, arrays included, replaces the default. A null replaces too:
#          use it to drop a named exemption or a default key.

default user := {}

user := c if {
	# regal ignore:unresolved-reference
	c := data.airflow.pod.config
	is_object(c)
}

# shipped[name]: a policy's Rego `defaults` ({"enabled", "params"} and
# optionally "exempt"). A comprehension, not a partial object rule: see
# policies/README.md, "Cost".
# regal ignore:prefer-set-or-object-rule
shipped := {name: defaults |
	some name

	# regal ignore:unresolved-reference
	defaults := data.airflow.pod.policies[name].defaults
	is_object(defaults)
}

# settings[name]: a policy's merged configuration - the user's delta
# deep-merged over its defaults (one object.union for all policies). Names no
# policy defines are kept out (see unknown_policies).
settings := shipped if {
	count(object.get(user, "policies", {})) == 0
} else := object.union(shipped, {name: delta |
	some name, delta in object.get(user, "policies", {})
	shipped[name]
})

# params(name): a policy's merged parameters.
params(name) := settings[name].params

# enabled(name): the merged `enabled` flag is exactly true.
enabled(name) if settings[name].enabled == true

# The user's global exemptions (none are shipped).
exempt := object.get(user, "exempt", {})

# The whole merged configuration, for people and tests
# (GET /v1/data/airflow/pod/lib/config/effective); the decision reads settings.
effective := {"exempt": exempt, "policies": settings}

# Policy names the user configures that no policy package defines.
unknown_policies contains name if {
	some name, _ in object.get(user, "policies", {})
	not shipped[name]
}
