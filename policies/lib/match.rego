package airflow.pod.lib.match

# applies(matcher, pod, airflow): every condition of matcher holds for the pod.
# Conditions (all optional; an empty matcher matches every pod; an unknown
# key never matches, so a typo cannot widen a match):
#   namespace:   glob on metadata.namespace
#   dag_id:      glob on input.airflow.dag_id (absent id: no match)
#   task_id:     glob on input.airflow.task_id
#   launcher:    glob on input.airflow.launcher
# An id listed in input.airflow.untrusted (only the pod's labels or annotations,
# which the DAG author writes, vouch for it) never matches: see
# docs/threat-model.md.
#   labels:      {key: glob} - each label present with a matching value
#   annotations: {key: glob} - likewise for annotations
# Globs are OPA glob.match patterns without delimiters: "*" matches any run of
# characters (dots and slashes included), "?" one, "{a,b}" alternatives.
applies(matcher, pod, airflow) if {
	is_object(matcher)
	every key, want in matcher {
		_condition(key, want, pod, airflow)
	}
}

# The conditions a matcher may have: the globs on one string, and the
# {key: glob} maps. lib/config.rego reports any other key, and any value of
# the wrong shape, in a configured exemption (such a matcher never matches).
glob_keys := {"namespace", "dag_id", "task_id", "launcher"}

map_keys := {"labels", "annotations"}

# problems(matcher): [key, problem] for each condition applies() cannot honour
# as written (an unknown key or a value of the wrong shape: applies() never
# matches such a matcher), and for an empty label or annotation map, which
# is no condition at all (it would match every pod).
problems(matcher) := {[key, problem] |
	some key, want in matcher
	some problem in _problems(key, want)
}

_problems(key, _) := {sprintf("unknown matcher key (known: %s)", [concat(", ", sort(glob_keys | map_keys))])} if {
	not key in glob_keys
	not key in map_keys
}

_problems(key, want) := {sprintf("must be a glob string, got %s", [json.marshal(want)])} if {
	key in glob_keys
	not is_string(want)
}

_problems(key, want) := {sprintf("must be a map of keys to glob strings, got %s", [json.marshal(want)])} if {
	key in map_keys
	not is_object(want)
}

_problems(key, want) := {"an empty map is no condition: it would match every pod"} if {
	key in map_keys
	want == {}
}

_problems(key, want) := {sprintf("%s must be a glob string, got %s", [json.marshal(k), json.marshal(v)]) |
	some k, v in want
	not is_string(v)
} if {
	key in map_keys
	is_object(want)
	count(want) > 0
}

glob_match(pattern, value) if {
	is_string(pattern)
	is_string(value)
	glob.match(pattern, null, value)
}

_condition("namespace", want, pod, _) if glob_match(want, object.get(pod, ["metadata", "namespace"], ""))

_condition("dag_id", want, _, airflow) if _trusted_match(want, airflow, "dag_id")

_condition("task_id", want, _, airflow) if _trusted_match(want, airflow, "task_id")

_condition("launcher", want, _, airflow) if _trusted_match(want, airflow, "launcher")

_condition("labels", want, pod, _) if _all_match(want, object.get(pod, ["metadata", "labels"], {}))

_condition("annotations", want, pod, _) if _all_match(want, object.get(pod, ["metadata", "annotations"], {}))

_all_match(want, values) if {
	is_object(want)
	every key, pattern in want {
		glob_match(pattern, values[key])
	}
}

# any_glob(patterns, value): value matches one of the globs. The policies'
# `exempt_images` parameter (Gatekeeper's exemptImages) is such a list,
# matched against each container's image as written.
any_glob(patterns, value) if {
	some pattern in patterns
	glob_match(pattern, value)
}

_trusted_match(want, airflow, key) if {
	not key in object.get(airflow, "untrusted", [])
	glob_match(want, airflow[key])
}
