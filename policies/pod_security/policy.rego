package airflow.pod.policies.pod_security

# The Pod Security Standards, check for check as k8s.io/pod-security-admission
# v0.34.2 implements them (policy/check_*.go): every check's ID, level,
# versions, overrides and its ForbiddenReason / ForbiddenDetail text. Judged on
# the patched pod; denies what fails `enforce`, warns on what fails `warn`.
# See README.md.
#
# Cost: every check walks the containers (or volumes, or annotations) once;
# the failing checks are computed once and shared by deny and warn.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match

defaults := {
	"enabled": true,
	"params": {
		"enforce": "baseline",
		"warn": "restricted",
		"version": "latest",
		"exempt_images": [],
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"enforce": "string", "warn": "string", "version": "string", "exempt_images": "string[]"}

params := config.params("pod_security")

# --- levels and versions ----------------------------------------------------

_ranks := {"privileged": 0, "baseline": 1, "restricted": 2}

# The newest policy version the library defines checks for: "latest" and
# anything newer mean Kubernetes 1.34.
latest_minor := 34

# An unknown enforce level fails closed (restricted), an unknown warn level
# fails open (privileged), as PodSecurity admission treats namespace labels.
default _enforce := "restricted"

_enforce := params.enforce if _ranks[params.enforce]

default _warn := "privileged"

_warn := params.warn if _ranks[params.warn]

# The version's minor number, or undefined for a malformed version.
_given_minor := latest_minor if {
	params.version == "latest"
} else := to_number(m) if {
	[[_, m]] := regex.find_all_string_submatch_n(`^v1\.([0-9]|[1-9][0-9]*)$`, params.version, 1)
}

# The version the checks run at (newer than the library: its newest).
default minor := 34

minor := latest_minor if {
	params.version == "latest"
} else := min({_given_minor, latest_minor})

default _version := "latest"

_version := params.version if _given_minor

# --- the checks: [id, level rank, minimum minor, baseline check it overrides] --

# In PodSecurity's order: baseline IDs sorted, then restricted IDs sorted
# (Kubernetes' check IDs are camelCase: app_armor_profile is appArmorProfile).
_checks := [
	["app_armor_profile", 1, 0, ""],
	["capabilities_baseline", 1, 0, ""],
	["host_namespaces", 1, 0, ""],
	["host_path_volumes", 1, 0, ""],
	["host_ports", 1, 0, ""],
	["host_probes_and_host_lifecycle", 1, 34, ""],
	["privileged", 1, 0, ""],
	["proc_mount", 1, 0, ""],
	["se_linux_options", 1, 0, ""],
	["seccomp_profile_baseline", 1, 0, ""],
	["sysctls", 1, 0, ""],
	["windows_host_process", 1, 0, ""],
	["allow_privilege_escalation", 2, 8, ""],
	["capabilities_restricted", 2, 22, "capabilities_baseline"],
	["restricted_volumes", 2, 0, "host_path_volumes"],
	["run_as_non_root", 2, 0, ""],
	["run_as_user", 2, 23, ""],
	["seccomp_profile_restricted", 2, 19, "seccomp_profile_baseline"],
]

# The checks at this version, in order (an array: the order is Kubernetes').
_active := [check | some check in _checks; check[2] <= minor]

# Baseline checks a restricted check replaces at the restricted level.
_overridden contains check[3] if {
	some check in _active
	check[3] != ""
}

# ids(rank): the checks of a level, in order.
ids(rank) := [id |
	some [id, level, _, _] in _active
	level <= rank
	not _skipped(rank, id)
]

_skipped(2, id) if id in _overridden

# violations(rank): "reason (detail)" of each failing check of a level. The
# failing checks are computed once; a pod failing none (the common case)
# never looks at the table of checks.
violations(rank) := [] if {
	count(_failed) == 0
} else := [msg | some id in ids(rank); msg := _failed[id]]

# The failing checks. A pod every check passes is recognised first, cheaply
# (fast.rego); only other pods run every check.
_failed := {} if _clean

else := failed

deny := [sprintf("violates PodSecurity %q: %s", [_label(_enforce), v]) | some v in violations(_ranks[_enforce])]

# Warnings preview the warn level; when it is the enforce level they would
# repeat the denies (PodSecurity does not warn on what it rejects either).
warn := array.concat(_config_warnings, [sprintf("would violate PodSecurity %q: %s", [_label(_warn), v]) |
	_warn != _enforce
	some v in violations(_ranks[_warn])
])

_label(level) := concat(":", [level, _version])

_config_warnings := [msg | some msg in _config_problems]

_config_problems contains sprintf(
	"invalid enforce level %s: must be one of privileged, baseline, restricted; enforcing restricted",
	[json.marshal(params.enforce)],
) if {
	not _ranks[params.enforce]
}

_config_problems contains sprintf(
	"invalid warn level %s: must be one of privileged, baseline, restricted; not warning",
	[json.marshal(params.warn)],
) if {
	not _ranks[params.warn]
}

_config_problems contains sprintf(
	`invalid version %s: must be "latest" or "v1.x"; using latest`,
	[json.marshal(params.version)],
) if {
	not _given_minor
}

# --- what the checks look at ------------------------------------------------

_spec := _object(object.get(k8s.pod, "spec", {}))

_pod_context := _object(object.get(_spec, "securityContext", {}))

_object(x) := x if is_object(x)

else := {}

_list(key) := value if {
	value := _spec[key]
	is_array(value)
} else := []

# Windows pods skip the restricted checks that need Linux-only fields (1.25+).
_windows if _spec.os.name == "windows"

_linux_only_skipped if {
	_windows
	minor >= 25
}

# Containers in PodSecurity's order (init, regular, ephemeral), without those
# whose image an exemption names. Checks that read only a container's
# securityContext judge each distinct context once (_contexts: the containers
# of a pod usually share one) and name the containers only when it fails.
_all_containers := array.concat(
	array.concat(_list("initContainers"), _list("containers")),
	_list("ephemeralContainers"),
)

containers := _all_containers if {
	count(params.exempt_images) == 0
} else := [c | some c in _all_containers; not match.any_glob(params.exempt_images, c.image)]

# --- message helpers (PodSecurity's pluralize and joinQuote) ----------------

_plural(1, one, _) := one

_plural(n, _, many) := many if n != 1

_quote(items) := concat("", [`"`, concat(`", "`, items), `"`])

# `container "a"` / `containers "a", "b"`
_named(names) := concat(" ", [_plural(count(names), "container", "containers"), _quote(names)])

# "pod", containers, ... joined with " and "
_setters(pod, names) := concat(" and ", array.concat(pod, [_named(names) | count(names) > 0]))

_pod_if(true) := ["pod"]

_pod_if(false) := []

# The distinct securityContexts of the judged containers ({} when absent).
_contexts contains object.get(c, "securityContext", {}) if some c in containers

# _named_by(bad): `container(s) "a", ...` for the containers whose
# securityContext is in the set bad, in PodSecurity's order.
_named_by(bad) := _named(_names(bad))

_names(bad) := [c.name | some c in containers; object.get(c, "securityContext", {}) in bad]
