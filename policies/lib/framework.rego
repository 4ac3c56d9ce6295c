# regal ignore:directory-package-mismatch
package airflow.pod.lib.framework

# Gathers the policies in data.airflow.pod.policies.<name> into one decision.
#
# Phase 1 (mutate): every active policy's `patch` is read against input.pod as
#   Airflow sent it. Operations are tagged with the policy name and ordered by
#   policy name, then by the policy's own order (an array keeps its order, a
#   set is sorted). Identical operations are kept once (the first), operations
#   touching fields the hook protects are dropped and denied, and two policies
#   writing different values to one path are denied as a conflict.
# Phase 2 (validate): the patch is applied with json.patch and every active
#   policy's `deny` and `warn` are evaluated with input.pod replaced by the
#   patched pod.
#
# A policy is active when its merged `enabled` is true and neither a global
# nor one of its own exemptions matches the pod as Airflow sent it.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match

# The policy name under which the framework reports its own findings.
reporter := "framework"

policy_names := sort(object.keys(config.shipped.policies))

# --- exemptions -------------------------------------------------------------

# An exemption is a named matcher (see lib/match.rego) with at least one condition.
_exempts(matcher) if {
	count(matcher) > 0
	match.applies(matcher, k8s.pod, k8s.airflow)
}

# Names of the global exemptions matching this pod.
global_exemptions contains name if {
	some name, matcher in config.effective.exempt
	_exempts(matcher)
}

# policy_exemptions[policy]: names of that policy's exemptions matching this pod.
policy_exemptions[policy] contains name if {
	some policy in policy_names
	some name, matcher in object.get(config.effective.policies[policy], "exempt", {})
	_exempts(matcher)
}

# Active policies, sorted by name.
active := [name |
	count(global_exemptions) == 0
	some name in policy_names
	config.enabled(name)
	not policy_exemptions[name]
]

# --- phase 1: patches -------------------------------------------------------

_ordered(x) := x if is_array(x)

_ordered(x) := sort(x) if is_set(x)

_ops := {"add", "remove", "replace", "move", "copy", "test"}

_valid(op) if {
	is_object(op)
	op.op in _ops
	is_string(op.path)
	_has_operand(op)
}

_has_operand(op) if op.op == "remove"

_has_operand(op) if {
	op.op in {"add", "replace", "test"}
	"value" in object.keys(op)
}

_has_operand(op) if {
	op.op in {"move", "copy"}
	is_string(op.from)
}

# Every operation the active policies propose, tagged, in decision order.
proposed := [[name, op] |
	some name in active

	# regal ignore:unresolved-reference
	some op in _ordered(data.airflow.pod.policies[name].patch)
]

_invalid contains msg if {
	some [name, op] in proposed
	not _valid(op)
	msg := sprintf("policy %q produced an invalid patch operation %s; operation dropped", [name, json.marshal(op)])
}

# Protected fields: exact pointers no operation may write, and the existing
# values no operation may overwrite through an ancestor.
_base_paths contains sprintf("/spec/containers/%d", [i]) if {
	some i, c in object.get(k8s.pod, ["spec", "containers"], [])
	c.name == k8s.base_container
}

_protected_exact := ({"/metadata/name", "/metadata/namespace"} | {concat("/", ["/metadata/labels", _esc(key)]) |
	some key in k8s.protected_labels
}) | {concat("", [p, "/name"]) | some p in _base_paths}

_esc(s) := replace(replace(s, "~", "~0"), "/", "~1")

_protected_existing := {p |
	some p in _protected_exact
	json.patch(k8s.pod, [{"op": "test", "path": p, "value": _value_at(p)}])
} | _base_paths

_value_at(p) := object.get(k8s.pod, [_unesc(s) | some s in array.slice(split(p, "/"), 1, 100)], null)

_unesc(s) := replace(replace(s, "~1", "/"), "~0", "~")

# [pointer, mode] for every location an operation changes.
_writes(op) := {[op.path, op.op]} if op.op in {"add", "replace", "remove", "copy"}

_writes(op) := {[op.path, "add"], [op.from, "remove"]} if op.op == "move"

_writes(op) := set() if op.op == "test"

_touches_protected(op) if {
	some [p, _] in _writes(op)
	p in _protected_exact
}

_touches_protected(op) if {
	some [p, mode] in _writes(op)
	mode in {"remove", "replace"}
	p in _base_paths
}

_touches_protected(op) if {
	some [p, _] in _writes(op)
	some q in _protected_existing
	startswith(q, concat("", [p, "/"]))
}

_protected_msgs contains msg if {
	some [name, op] in proposed
	_valid(op)
	_touches_protected(op)
	msg := sprintf("policy %q must not change %s (a field the hook protects); operation dropped", [name, op.path])
}

_kept := [[name, op] |
	some [name, op] in proposed
	_valid(op)
	not _touches_protected(op)
]

# Identical operations (ignoring the policy tag) are applied once, first wins.
_first[op] := min({i | some i; _kept[i][1] == op}) if {
	some [_, op] in _kept
}

# The decision's patch: operations tagged with their policy.
patch := [object.union(op, {"policy": name}) |
	some i, [name, op] in _kept
	_first[op] == i
]

# --- conflicts --------------------------------------------------------------

_effect(op) := {"value": op.value} if op.op in {"add", "replace"}

_effect(op) := {"remove": true} if op.op == "remove"

_effect(op) := {"from": op.from} if op.op in {"move", "copy"}

_describe(effect) := sprintf("writes %s", [json.marshal(effect.value)]) if "value" in object.keys(effect)

_describe(effect) := "removes it" if effect.remove

_describe(effect) := sprintf("copies %s", [effect.from]) if effect.from

# Writes that replace what is at a path (appends to "/-" never collide).
_writes_by_policy := [[op.policy, op.path, _effect(op)] |
	some op in patch
	op.op != "test"
	not endswith(op.path, "/-")
]

_writers[path] := writers if {
	some [_, path, _] in _writes_by_policy
	writers := {[name, effect] | some [name, p, effect] in _writes_by_policy; p == path}
}

_conflict_msgs contains msg if {
	some path, writers in _writers
	count(writers) > 1
	some [a, effect_a] in writers
	some [b, effect_b] in writers
	a < b
	effect_a != effect_b
	msg := sprintf("conflicting patches at %s: policy %q %s, policy %q %s", [
		path,
		a, _describe(effect_a),
		b, _describe(effect_b),
	])
}

# --- phase 2: validation on the patched pod ---------------------------------

default patch_applies := false

patch_applies if json.patch(k8s.pod, patch)

_apply_msgs contains "the combined patch does not apply to the pod; deny and warn rules judged the unpatched pod" if {
	not patch_applies
}

# The pod the validating rules judge.
patched_pod := json.patch(k8s.pod, patch) if patch_applies

else := k8s.pod

_as_text(m) := m if is_string(m)

_as_text(m) := m.msg if {
	is_object(m)
	is_string(m.msg)
}

_as_text(m) := json.marshal(m) if {
	not is_string(m)
	not is_string(m.msg)
}

# The validating rules of each active policy, judged on the patched pod.
# `with` is the point of the design here: it is how phase 2 sees the patched
# pod; the dynamic data reference reaches each policy package by name.
_policy_deny[name] := _ordered(msgs) if {
	some name in active

	# regal ignore:with-outside-test-context,unresolved-reference
	msgs := data.airflow.pod.policies[name].deny with input.pod as patched_pod
}

_policy_warn[name] := _ordered(msgs) if {
	some name in active

	# regal ignore:with-outside-test-context,unresolved-reference
	msgs := data.airflow.pod.policies[name].warn with input.pod as patched_pod
}

_framework_deny := ((_invalid | _protected_msgs) | _conflict_msgs) | _apply_msgs

_framework_warn contains sprintf("configuration names unknown policy %q", [name]) if {
	some name in config.unknown_policies
}

_framework_warn contains sprintf("exemption %q has no conditions and is ignored", [name]) if {
	some name, matcher in config.effective.exempt
	_empty_matcher(matcher)
}

_framework_warn contains sprintf("exemption %q of policy %q has no conditions and is ignored", [name, policy]) if {
	some policy in policy_names
	some name, matcher in object.get(config.effective.policies[policy], "exempt", {})
	_empty_matcher(matcher)
}

_empty_matcher(matcher) if matcher == {}

_reporters := sort({reporter} | {name | some name in active})

deny := [{"msg": _as_text(m), "policy": name} |
	some name in _reporters
	some m in _deny_source(name)
]

warn := [{"msg": _as_text(m), "policy": name} |
	some name in _reporters
	some m in _warn_source(name)
]

_deny_source(name) := sort(_framework_deny) if name == reporter

_deny_source(name) := _policy_deny[name] if name != reporter

_warn_source(name) := sort(_framework_warn) if name == reporter

_warn_source(name) := _policy_warn[name] if name != reporter
