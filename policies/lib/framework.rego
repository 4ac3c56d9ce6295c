# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
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
#
# Cost: every step is linear (or n log n) in the number of operations -
# duplicates and shared paths are found by sorting, never by comparing all
# pairs - and the common case (valid, unprotected, unique operations) takes a
# handful of expressions per operation; the rare cases are looked at only
# when a cheap test says they exist.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages

# The policy name under which the framework reports its own findings.
reporter := "framework"

policy_names := sort(object.keys(config.settings))

# --- exemptions -------------------------------------------------------------

# An exemption is a named matcher (see lib/match.rego) with at least one condition.
_exempts(matcher) if {
	count(matcher) > 0
	match.applies(matcher, k8s.pod, k8s.airflow)
}

# Names of the global exemptions matching this pod.
global_exemptions contains name if {
	some name, matcher in config.exempt
	_exempts(matcher)
}

# Every policy's own exemptions, as [policy, exemption name, matcher].
_policy_matchers := [[policy, name, matcher] |
	some policy, setting in config.settings
	some name, matcher in setting.exempt
]

# policy_exemptions[policy]: names of that policy's exemptions matching this pod.
policy_exemptions[policy] contains name if {
	some [policy, name, matcher] in _policy_matchers
	_exempts(matcher)
}

# Active policies, sorted by name.
active := [name |
	k8s.pod != {}
	count(global_exemptions) == 0
	some name in policy_names
	config.settings[name].enabled == true
	not name in _exempted
]

_exempted := object.keys(policy_exemptions)

# --- phase 1: patches -------------------------------------------------------

_ordered(x) := x if is_array(x)

_ordered(x) := sort(x) if is_set(x)

# Every operation the active policies propose, as [policy, operation], in
# decision order.
proposed := [[name, op] |
	some name in active

	# regal ignore:unresolved-reference
	some op in _ordered(data.airflow.pod.policies[name].patch)
]

# The operations as proposed, untagged, and the pod they make. In the common
# case (every operation valid, none protected, no copies) this is the
# patched pod already, and per-operation validity is never checked.
_raw := [op | some [_, op] in proposed]

_raw_result := json.patch(k8s.pod, _raw)

default _raw_applies := false

_raw_applies if _raw_result

# The member each operation needs besides "op" and "path".
_operand := {"add": "value", "replace": "value", "test": "value", "remove": "path", "move": "from", "copy": "from"}

# Indices of malformed operations (looked for only when the patch failed).
_malformed contains i if {
	not _raw_applies
	some i, op in _raw
	not _well_formed(op)
}

_well_formed(op) if {
	is_string(op.path)
	object.get(op, _operand[op.op], null) != null
}

_invalid contains msg if {
	some i in _malformed
	[name, op] := proposed[i]
	msg := sprintf("policy %q produced an invalid patch operation %s; operation dropped", [name, json.marshal(op)])
}

# Protected fields. _forbidden: pointers no operation may write - Airflow's
# name, namespace and labels, the base container's name, and their ancestors
# (writing an ancestor would overwrite them; Airflow's pods always have
# them). The base container itself may not be removed or replaced (inserting
# before it is fine). The label keys are k8s.protected_labels.
_base_paths contains sprintf("/spec/containers/%d", [i]) if {
	some i, c in object.get(k8s.pod, ["spec", "containers"], [])
	c.name == k8s.base_container
}

_forbidden := {
	"",
	"/metadata",
	"/metadata/name",
	"/metadata/namespace",
	"/metadata/labels",
	"/metadata/labels/dag_id",
	"/metadata/labels/task_id",
	"/metadata/labels/run_id",
	"/metadata/labels/try_number",
	"/metadata/labels/map_index",
	"/metadata/labels/kubernetes_executor",
	"/metadata/labels/kubernetes_pod_operator",
	"/metadata/labels/airflow-worker",
	"/metadata/labels/airflow_version",
	"/metadata/labels/airflow_kpo_in_cluster",
	"/spec",
	"/spec/containers",
} | {concat("", [p, "/name"]) | some p in _base_paths}

_sensitive := _forbidden | _base_paths

# Operations whose path or source is sensitive at all (rare): only these are
# looked at closely.
_suspects contains i if {
	some i, [_, op] in proposed
	op.path in _sensitive
}

_suspects contains i if {
	some i, [_, op] in proposed
	op.from in _sensitive
}

# Indices of operations touching a protected field.
_protected contains i if {
	some i in _suspects
	op := proposed[i][1]
	op.op != "test"
	op.path in _forbidden
}

_protected contains i if {
	some i in _suspects
	op := proposed[i][1]
	op.op in {"remove", "replace"}
	op.path in _base_paths
}

_protected contains i if {
	some i in _suspects
	op := proposed[i][1]
	op.op == "move"
	op.from in _sensitive
}

_protected_msgs contains msg if {
	some i in _protected
	not i in _malformed
	[name, op] := proposed[i]
	msg := sprintf("policy %q must not change %s (a field the hook protects); operation dropped", [name, op.path])
}

# Identical operations (ignoring the policy tag) are applied once, first wins:
# sorting [operation, index] puts copies next to each other, first one first.
_sorted := sort([[op, i] | some i, op in _raw])

# Indices of dropped operations: malformed, protected, or copies.
_dropped := (_malformed | _protected) | {i |
	some k, [op, i] in _sorted
	k > 0
	_sorted[k - 1][0] == op
}

# The decision's patch: operations tagged with their policy.
patch := [object.union(op, {"policy": name}) |
	some i, [name, op] in proposed
	not i in _dropped
]

# --- conflicts --------------------------------------------------------------

# Writes that replace what is at a path, sorted by path (appends to "/-"
# never collide), as [path, policy, what is left there]: add and replace of
# one value agree.
_writes := sort([[op.path, op.policy, [object.get(op, "value", null), object.get(op, "from", null), op.op]] |
	some op in patch
	op.op != "test"
	not endswith(op.path, "/-")
])

# Paths written more than once (after copies were dropped): rare, so the
# comparison below runs on few entries; when every path of the patch is
# distinct there is nothing to compare.
_shared_paths contains path if {
	count({op.path | some op in patch}) != count(patch)
	some k, [path, _, _] in _writes
	k > 0
	_writes[k - 1][0] == path
}

_describe([value, null, kind]) := sprintf("writes %s", [json.marshal(value)]) if kind in {"add", "replace"}

_describe([null, from, "move"]) := sprintf("moves %s", [from])

_describe([null, from, "copy"]) := sprintf("copies %s", [from])

_describe([null, null, "remove"]) := "removes it"

_conflict_msgs contains msg if {
	some path in _shared_paths
	writers := {[name, _describe(effect)] | some [p, name, effect] in _writes; p == path}
	some [a, effect_a] in writers
	some [b, effect_b] in writers
	a < b
	effect_a != effect_b
	msg := sprintf("conflicting patches at %s: policy %q %s, policy %q %s", [path, a, effect_a, b, effect_b])
}

# --- phase 2: validation on the patched pod ---------------------------------

_applied := k8s.pod if {
	count(_raw) == 0
} else := _raw_result if {
	count(_dropped) == 0
} else := json.patch(k8s.pod, patch)

default patch_applies := false

patch_applies if _applied

# The pod the validating rules judge.
patched_pod := _applied if patch_applies

else := k8s.pod

# The validating rules of each active policy (the dynamic data reference
# reaches each policy package by name).
_denies[name] := _ordered(msgs) if {
	some name in active

	# regal ignore:unresolved-reference
	msgs := data.airflow.pod.policies[name].deny
}

_warns[name] := _ordered(msgs) if {
	some name in active

	# regal ignore:unresolved-reference
	msgs := data.airflow.pod.policies[name].warn
}

# Phase 2 in one evaluation: input.pod is the patched pod. `with` is the
# point of the design here. The active set and the settings computed for the
# pod as Airflow sent it are carried in, so exemptions are judged once, on
# the original pod, and nothing is computed twice.
_judged := [d, w] if {
	settings := config.settings

	# regal ignore:with-outside-test-context
	[d, w] := [_denies, _warns] with input.pod as patched_pod with active as active with config.settings as settings
}

# --- the framework's own findings -------------------------------------------

_framework_deny contains msg if some msg in _invalid

_framework_deny contains msg if some msg in _protected_msgs

_framework_deny contains msg if some msg in _conflict_msgs

_framework_deny contains msg if {
	not patch_applies
	msg := "the combined patch does not apply to the pod; deny and warn rules judged the unpatched pod"
}

_framework_warn contains sprintf("configuration names unknown policy %q", [name]) if {
	some name in config.unknown_policies
}

_framework_warn contains sprintf("exemption %q has no conditions and is ignored", [name]) if {
	some name, matcher in config.exempt
	matcher == {}
}

_framework_warn contains sprintf("exemption %q of policy %q has no conditions and is ignored", [name, policy]) if {
	some [policy, name, matcher] in _policy_matchers
	matcher == {}
}

# --- the decision's lists -----------------------------------------------------

# Entries of the active policies, in policy order; the framework's findings
# (usually none) are merged in at the place of their name. Each policy gives
# at most messages.max_per_policy entries per list (then "... and N more"),
# each at most messages.max_message_chars long: the pod cannot make the
# decision large (lib/messages.rego).
deny := _entries(_judged[0]) if {
	count(_framework_deny) == 0
} else := _entries(object.union(_judged[0], {reporter: sort(_framework_deny)}))

warn := _entries(_judged[1]) if {
	count(_framework_warn) == 0
} else := _entries(object.union(_judged[1], {reporter: sort(_framework_warn)}))

_entries(by_policy) := [{"msg": messages.cut(_as_text(m), messages.max_message_chars), "policy": name} |
	some name in sort(object.keys(by_policy))
	some m in messages.limit(by_policy[name])
]

_as_text(m) := m if {
	is_string(m)
} else := m.msg if {
	is_string(m.msg)
} else := json.marshal(m)
