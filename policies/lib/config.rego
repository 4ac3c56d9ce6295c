package airflow.pod.lib.config

import data.airflow.pod.lib.compiled
import data.airflow.pod.lib.exemptions
import data.airflow.pod.lib.images

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
# policy defines are kept out. A delta with a mistake (see errors) is applied
# without it, so that a mistake never switches a control off or weakens it
# (policies/README.md, "Configuration errors").
# The compiled form (lib/compiled.rego) has them merged already.
settings := compiled.settings if {
	compiled.holds
} else := shipped if {
	count(_user_policies) == 0
} else := object.union(shipped, _configured) if {
	count(_suspects) == 0
} else := object.union(shipped, object.union(
	object.remove(_configured, object.keys(_suspects)),
	{name: _applied(name, delta) | some name, delta in _suspects},
))

default _user_policies := {}

_user_policies := user.policies if is_object(user.policies)

# The configured policies whose delta is an object. A comprehension, not a
# partial object rule: cheaper on every query (policies/README.md, "Cost").
# regal ignore:prefer-set-or-object-rule
_configured := {name: delta |
	some name, delta in _user_policies
	shipped[name]
	is_object(delta)
}

# A delta with a possible fault as it is applied: a non-boolean `enabled`
# reads as true (whatever was meant, the control stays on); unknown keys,
# mistyped or unknown parameters, params or exempt that are no object, and
# invalid exemptions are left out (the defaults stay).
_applied(name, delta) := {key: value |
	some key, raw in delta
	key in _settings_keys
	value := _applied_value(name, key, raw)
}

_applied_value(_, "enabled", raw) := raw if is_boolean(raw)

_applied_value(_, "enabled", raw) if not is_boolean(raw)

_applied_value(name, key, raw) := object.remove(raw, _faulty_entries(name, key)) if {
	key in {"params", "exempt"}
	is_object(raw)
}

# Keys of a policy's params or exempt with a fault of their own.
_faulty_entries(name, key) := {path[3] |
	some [path, _] in _faults
	count(path) > 3
	path[1] == name
	path[2] == key
}

# params(name): a policy's merged parameters.
params(name) := settings[name].params

# enabled(name): the merged `enabled` flag is exactly true.
enabled(name) if settings[name].enabled == true

# The user's global exemptions (none are shipped), without the matchers that
# have a fault (see errors). A null entry, which removes a named exemption,
# stays and matches nothing.
default exempt := {}

exempt := user.exempt if {
	_sound_exemptions(user.exempt)
} else := object.remove(user.exempt, {path[1] |
	some [path, _] in _faults
	path[0] == "exempt"
	count(path) > 1
}) if {
	is_object(user.exempt)
}

# The whole merged configuration, for people and tests
# (GET /v1/data/airflow/pod/lib/config/effective); the decision reads settings.
effective := {"exempt": exempt, "policies": settings}

# Policy names the user configures that no policy package defines.
unknown_policies contains name if {
	some name, _ in _user_policies
	not shipped[name]
}

# --- configuration errors ---------------------------------------------------
#
# errors: one message per mistake, "configuration error: <key>: <problem>",
# <key> the dotted path in data.airflow.pod.config. The framework warns with
# each on every decision; `verify`, `doctor` and `bundle build` fail on them.
errors contains sprintf("configuration error: %s: %s", [concat(".", path), problem]) if {
	not user in _empty
	not compiled.holds # refused at compile time
	not _clean
	some [path, problem] in _faults
}

# The configurations with nothing to check (the shipped data.yaml's, none).
_empty := {{}, {"exempt": {}, "policies": {}}}

# No fault anywhere: a few whole-configuration checks, so that the rules
# below run only for a configuration with a mistake. (An unknown policy or a
# delta that is no object is left out of _configured.)
_clean if {
	count(_suspects) == 0
	count(_configured) == count(_user_policies)
	count(object.keys(user) - _top_keys) == 0
	is_object(object.get(user, "policies", {}))
	_sound_exemptions(object.get(user, "exempt", {}))
	_sound_admission(object.get(user, "admission", {}))
	every entry in object.get(object.get(user, "admission", {}), "trusted_requesters", []) {
		_sound_requester(entry)
	}
}

# _faults: [path, problem], path the keys leading to the mistake. Evaluated
# only for a suspicious configuration: by errors, and by settings and exempt
# to leave out what has a fault.

_top_keys := {"admission", "exempt", "policies"}

_settings_keys := {"enabled", "params", "exempt"}

_faults contains [[key], sprintf("unknown key (known: %s)", [concat(", ", sort(_top_keys))])] if {
	some key, _ in user
	not key in _top_keys
}

# admission (lib/admission.rego): {"trusted_requesters": [{"username": "..."}]}.
# A malformed entry trusts nobody; it is reported so that the mistake is seen.
_faults contains [["admission"], "must be {trusted_requesters: [...]}; unknown keys are ignored"] if {
	admission := object.get(user, "admission", {})
	is_object(admission)
	not _sound_admission(admission)
}

_faults contains [["admission", "trusted_requesters", format_int(i, 10)], msg] if {
	some i, entry in object.get(object.get(user, "admission", {}), "trusted_requesters", [])
	not _sound_requester(entry)
	msg := sprintf("must be {username: <exact name>}, got %s; it trusts nobody", [json.marshal(entry)])
}

_faults contains [[key], sprintf("must be an object, got %s; ignored", [json.marshal(value)])] if {
	some key in _top_keys
	value := object.get(user, key, {})
	not is_object(value)
}

_faults contains [["policies", name], "no policy of that name; ignored"] if {
	some name in unknown_policies
}

_faults contains [["policies", name], msg] if {
	some name, delta in _user_policies
	shipped[name]
	not is_object(delta)
	msg := sprintf(
		"must be an object (enabled, params, exempt), got %s; the policy keeps its defaults",
		[json.marshal(delta)],
	)
}

_faults contains [["policies", name, key], msg] if {
	some name, delta in _suspects
	some key, _ in delta
	not key in _settings_keys
	msg := sprintf("unknown key (known: %s); ignored", [concat(", ", sort(_settings_keys))])
}

_faults contains [["policies", name, "enabled"], msg] if {
	some name, delta in _suspects
	not is_boolean(object.get(delta, "enabled", false))
	msg := sprintf("must be true or false, got %s; the policy runs", [json.marshal(delta.enabled)])
}

_faults contains [["policies", name, "params"], msg] if {
	some name, delta in _suspects
	not is_object(object.get(delta, "params", {}))
	msg := sprintf("must be an object, got %s; the defaults are used", [json.marshal(delta.params)])
}

# A policy without a schema cannot have its parameters checked: they are
# applied as they are.
_faults contains [["policies", name, "params"], msg] if {
	some name, delta in _suspects
	count(object.get(delta, "params", {})) > 0
	not _schemas[name]
	msg := sprintf("policy %q defines no schema, so its parameters cannot be checked", [name])
}

_faults contains [["policies", name, "params", key], msg] if {
	some name, delta in _suspects
	schema := _schemas[name]
	some key, _ in _params_delta(delta)
	not schema[key]
	msg := sprintf("unknown parameter (known: %s); ignored", [concat(", ", sort(object.keys(schema)))])
}

_faults contains [["policies", name, "params", key], msg] if {
	some name, delta in _suspects
	schema := _schemas[name]
	some key, value in _params_delta(delta)
	not type_ok(value, schema[key])
	default_value := json.marshal(shipped[name].params[key])
	msg := sprintf("must be %s, got %s; the default %s is used", [schema[key], json.marshal(value), default_value])
}

_faults contains [["policies", name, "exempt"], msg] if {
	some name, delta in _suspects
	not is_object(object.get(delta, "exempt", {}))
	msg := sprintf("must be an object of named matchers, got %s; ignored", [json.marshal(delta.exempt)])
}

_faults contains [array.concat(prefix, [name]), msg] if {
	some [prefix, named] in _exemption_sets
	some name, matcher in named
	not is_object(matcher)
	matcher != null
	msg := sprintf("must be a matcher (an object), got %s; ignored", [json.marshal(matcher)])
}

_faults contains [array.concat(prefix, [name, key]), sprintf("%s; this exemption matches no pod", [problem])] if {
	some [prefix, named] in _exemption_sets
	some name, matcher in named
	is_object(matcher)
	some [key, problem] in exemptions.problems(matcher)
}

# The schema of each policy the user configures.
# regal ignore:prefer-set-or-object-rule
_schemas := {name: schema |
	some name, _ in _configured

	# regal ignore:unresolved-reference
	schema := data.airflow.pod.policies[name].schema
	is_object(schema)
}

_params_delta(delta) := p if {
	p := delta.params
	is_object(p)
} else := {}

# [key prefix, exemptions] for the global exemptions and each suspect
# policy's own.
_exemption_sets contains [["exempt"], user.exempt] if {
	is_object(user.exempt)
	not _sound_exemptions(user.exempt)
}

_exemption_sets contains [["policies", name, "exempt"], delta.exempt] if {
	some name, delta in _suspects
	is_object(delta.exempt)
}

# The configured policies whose delta may hold a mistake. Every check at once,
# cheap when there is none (the common case): only these are looked at key by
# key above.
# (A comprehension: evaluated once per query, where lookups of a partial
# object rule by key would evaluate it again for each absent key.)
# regal ignore:prefer-set-or-object-rule
_suspects := {name: delta |
	some name, delta in _configured
	not _sound(name, delta)
}

# One body, no helper call per parameter: this runs for every configured
# policy on every query.
_sound(name, delta) if {
	count(object.keys(delta) - _settings_keys) == 0
	is_boolean(object.get(delta, "enabled", true))
	_sound_exemptions(object.get(delta, "exempt", {}))
	given := object.get(delta, "params", {})
	is_object(given)
	schema := object.get(_schemas, name, {})
	every key, value in given {
		type_ok(value, schema[key])
	}
}

_sound_exemptions(named) if {
	is_object(named)
	every matcher in named {
		_sound_matcher(matcher)
	}
}

_sound_matcher(null)

_sound_matcher(matcher) if {
	is_object(matcher)
	count(exemptions.problems(matcher)) == 0
}

# --- exemptions that end -------------------------------------------------------
#
# expiry: each exemption (global or a policy's own, faults left out) that has
# expired or ends within exemptions.warning_days, by OPA's clock:
# {"exemption": <dotted key>, "expires": <as written>, "state": "expired" or
# "expiring", "ends": <the RFC 3339 instant it stops matching, UTC>}.
# `verify` and `doctor` report expired ones as errors and expiring ones as
# warnings; `bundle build --strict` refuses expired ones. Decisions do not
# carry it (an expired exemption that would have matched the pod is a
# framework warning there).
expiry contains {
	"exemption": concat(".", array.concat(prefix, [name])),
	"expires": exemption.expires,
	"state": state,
	"ends": time.format([exemptions.ends_ns(exemption.expires), "UTC", "2006-01-02T15:04:05Z07:00"]),
} if {
	some [prefix, named] in _every_exemption_set
	some name, exemption in named
	state := exemptions.state(exemption)
}

_every_exemption_set contains [["exempt"], exempt]

_every_exemption_set contains [["policies", name, "exempt"], setting.exempt] if {
	some name, setting in settings
	is_object(setting.exempt)
}

# --- advisories ---------------------------------------------------------------
#
# advisories: valid configuration that grants more than it may seem to.
# `verify`, `doctor` and `bundle build` show them as warnings; decisions do
# not carry them (they would repeat on every pod).

# An exempt_images entry that is not one image pinned by digest matches
# images the DAG author names, whatever they hold: `registry/debug/*` lets a
# privileged pod of any content through.
advisories contains msg if {
	some name, setting in settings
	some i, pattern in object.get(setting, ["params", "exempt_images"], [])
	not digest_pinned(pattern)
	msg := sprintf("policies.%s.params.exempt_images[%d]: %s %s: %s %s", [
		name, i, json.marshal(pattern),
		"is not one image pinned by digest (name@sha256:<64 hex>)",
		name, "skips every container whose image it matches, whatever that image holds (DAG authors write image names)",
	])
}

# A namespace glob in a global exemption switches every policy off for any
# namespace it matches, including ones created later.
advisories contains msg if {
	some name, matcher in exempt
	_glob(matcher.namespace)
	msg := sprintf("exempt.%s.namespace: the glob %s %s; %s", [
		name, json.marshal(matcher.namespace),
		"exempts every pod in every namespace it matches (now or created later) from every policy",
		"a namespace is a boundary only where RBAC keeps DAG authors' pods out of it",
	])
}

# digest_pinned(pattern): one image reference with a digest, no glob.
digest_pinned(pattern) if {
	not _glob(pattern)
	images.parse(pattern).digest != ""
}

_glob(pattern) if regex.match(`[*?\[\]{}\\]`, pattern)

# --- the schema's type language -------------------------------------------------
#
# A policy's `schema` maps each parameter to a type: "boolean", "string",
# "number", "object", "array" (a list of anything), "null", alternatives
# joined by "|" ("string|number", "object|null" for a parameter whose null
# means "off"), and "T[]" for a list of T, where T may be a list of
# alternatives: "string[]", "object[]", "string|object[]" (each entry a
# string or an object; "(string|object)[]" reads the same).

# type_ok(value, type): value has the type. A base type is one comparison
# with type_name() (the common case, so first in an else chain);
# alternatives and lists split the type.
type_ok(value, type) if {
	type_name(value) == type
} else if {
	not endswith(type, "[]")
	type_name(value) in _alternatives(type)
} else if {
	endswith(type, "[]")
	is_array(value)
	alternatives := _alternatives(type)
	every v in value {
		type_name(v) in alternatives
	}
}

# known_type(type): type is a sentence of the language.
known_type(type) if count(_alternatives(type) - _base_types) == 0

_base_types := {"boolean", "string", "number", "object", "array", "null"}

_alternatives(type) := {t | some t in split(trim(trim_suffix(type, "[]"), "()"), "|")}

# admission's shape (the _faults above name what is wrong).
_sound_admission(admission) if {
	is_object(admission)
	object.keys(admission) - {"trusted_requesters"} == set()
	is_array(object.get(admission, "trusted_requesters", []))
}

_sound_requester(entry) if {
	is_object(entry)
	object.keys(entry) == {"username"}
	is_string(entry.username)
	entry.username != ""
}
