# METADATA
# title: The policy framework
# description: |
#   Gathers the policies in data.airflow.pod.policies.<name> into one decision.
#
#   Phase 1 (mutate): every active policy's `patch` is read against input.pod
#   as Airflow sent it. Operations are tagged with the policy name and ordered
#   by policy name, then by the policy's own order (an array keeps its order,
#   a set is sorted). Identical operations are kept once (the first),
#   operations touching fields the hook protects are dropped and denied, and
#   two policies writing different values to one path are denied as a
#   conflict.
#
#   Phase 2 (validate): the patch is applied with json.patch and every active
#   policy's `deny` and `warn` are evaluated with input.pod replaced by the
#   patched pod.
#
#   A policy is active when its merged `enabled` is true and neither a global
#   nor one of its own exemptions matches the pod as Airflow sent it. How the
#   rules below stay cheap: policies/README.md, "Cost".
# scope: package
package airflow.pod.lib.framework

import data.airflow.pod.lib.compiled
import data.airflow.pod.lib.config
import data.airflow.pod.lib.exemptions
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages

# METADATA
# title: The framework's own policy name
# description: Deny and warn entries the framework raises itself carry this policy name.
reporter := "framework"

# METADATA
# title: Policy names
# description: The name of every policy package that defines `defaults`, sorted.
policy_names := sort(object.keys(config.settings))

# --- exemptions -------------------------------------------------------------

# An exemption is a named matcher (see lib/match.rego) with at least one
# condition, and optionally an owner and an end (lib/exemptions.rego): an
# expired one matches no pod.
_exempts(exemption) if {
	_matches(exemption)
	exemptions.live(exemption)
}

_matches(exemption) if {
	conditions := exemptions.conditions(exemption)
	count(conditions) > 0
	match.applies(conditions, k8s.pod, k8s.airflow)
}

# METADATA
# title: Global exemptions matching the pod
# description: Names of the global exemptions whose matcher holds for the pod as Airflow sent it.
global_exemptions contains name if {
	some name, matcher in config.exempt
	_exempts(matcher)
}

# Every policy's own exemptions, as [policy, exemption name, matcher].
_policy_matchers := [[policy, name, matcher] |
	some policy, setting in config.settings
	some name, matcher in setting.exempt
]

# METADATA
# title: Policy exemptions matching the pod
# description: policy_exemptions[policy] holds the names of that policy's exemptions matching the pod.
policy_exemptions[policy] contains name if {
	some [policy, name, matcher] in _policy_matchers
	_exempts(matcher)
}

# METADATA
# title: Exemptions that applied
# description: |
#   [{"name", "policy", "reason", "ticket", "expires"}]: the global exemptions
#   matching the pod, then the enabled policies' own, each sorted by name
#   ("policy" only for a policy's own; owner fields only when set). Empty
#   without a pod.
# scope: document
default applied_exemptions := []

applied_exemptions := array.concat(
	[exemptions.describe(name, "", config.exempt[name]) | some name in sort(global_exemptions)],
	[exemptions.describe(name, policy, matcher) |
		some [policy, name, matcher] in sort(_policy_matchers)
		policy in _enabled
		name in policy_exemptions[policy]
	],
) if {
	k8s.pod != {}
}

# METADATA
# title: Active policies
# description: |
#   The policies that take part, sorted by name: merged `enabled` is exactly
#   true and no global or own exemption matches. Empty without a pod.
# scope: document
default active := []

active := sort(_enabled - _exempted) if {
	k8s.pod != {}
	count(global_exemptions) == 0
}

# One pass over the settings and one set difference: cheaper per policy than
# a lookup and a negation for each name. Comprehensions, not set rules, here
# and below: they cost less on every query (policies/README.md, "Cost").
# regal ignore:prefer-set-or-object-rule
_enabled := compiled.enabled if {
	compiled.holds
} else := {name |
	some name, setting in config.settings
	setting.enabled == true
}

_exempted := object.keys(policy_exemptions)

# --- phase 1: patches -------------------------------------------------------

_ordered(x) := x if is_array(x)

_ordered(x) := sort(x) if is_set(x)

# METADATA
# title: Proposed operations
# description: |
#   Every operation the active policies propose, as [policy, operation], in
#   decision order (policy name, then the policy's own order).
proposed := compiled.proposed if {
	compiled.holds
	compiled.all_active
} else := [[name, op] |
	some name in active

	# regal ignore:unresolved-reference
	ops := data.airflow.pod.policies[name].patch

	# a set bound whole iterates in sorted order, an array in its own
	some op in ops
]

# The operations as proposed, untagged, and the pod they make (undefined when
# they do not apply). In the common case (every operation valid, none
# protected, no copies) that is the patched pod already.
_proposed_ops := [op | some [_, op] in proposed]

_proposed_pod := json.patch(k8s.pod, _proposed_ops)

default _proposed_ops_apply := false

_proposed_ops_apply if _proposed_pod

# The common case, recognised with two sets and one json.patch: every
# operation has a path of its own (so there are no copies and no conflicts),
# none touches a protected field, and together they apply (so none is
# malformed). Then the patch is the proposed operations as they are, and
# none of the per-operation checks below runs.
# regal ignore:prefer-set-or-object-rule
_paths := {op.path | some [_, op] in proposed}

# regal ignore:prefer-set-or-object-rule
_sources := {op.from | some [_, op] in proposed}

_touches_sensitive if count(_paths & _sensitive) > 0

_touches_sensitive if count(_sources & _sensitive) > 0

default _common_case := false

_common_case if {
	count(_paths) == count(proposed)
	not _touches_sensitive
	_proposed_ops_apply
}

# The member each operation needs besides "op" and "path".
_operand := {"add": "value", "replace": "value", "test": "value", "remove": "path", "move": "from", "copy": "from"}

# Indices of malformed operations (looked for only when the patch failed).
_malformed contains i if {
	not _proposed_ops_apply
	some i, op in _proposed_ops
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
# name, namespace and labels (k8s.protected_label_paths), the base
# container's name, and their ancestors (writing an ancestor would overwrite
# them). The labels map itself only where the pod has one: a pod without
# labels carries no Airflow label to protect, and may be given a map. The
# base container itself may not be removed or replaced (inserting before it
# is fine).
_base_paths contains sprintf("/spec/containers/%d", [i]) if {
	some i, c in object.get(k8s.pod, ["spec", "containers"], [])
	c.name == k8s.base_container
}

_forbidden := (({
	"",
	"/metadata",
	"/metadata/name",
	"/metadata/namespace",
	"/spec",
	"/spec/containers",
} | _labels_map) | k8s.protected_label_paths) | {concat("", [p, "/name"]) | some p in _base_paths}

_labels_map contains "/metadata/labels" if is_object(k8s.pod.metadata.labels)

_sensitive := _forbidden | _base_paths

# Operations whose path or source is sensitive at all: only these are looked
# at closely.
_suspects contains i if {
	_touches_sensitive
	some i, [_, op] in proposed
	op.path in _sensitive
}

_suspects contains i if {
	_touches_sensitive
	some i, [_, op] in proposed
	op.from in _sensitive
}

# Indices of the operations that would change a protected field.
_protected_violations contains i if {
	some i in _suspects
	op := proposed[i][1]
	op.op != "test"
	op.path in _forbidden
}

_protected_violations contains i if {
	some i in _suspects
	op := proposed[i][1]
	op.op in {"remove", "replace"}
	op.path in _base_paths
}

_protected_violations contains i if {
	some i in _suspects
	op := proposed[i][1]
	op.op == "move"
	op.from in _sensitive
}

_protected_msgs contains msg if {
	some i in _protected_violations
	not i in _malformed
	[name, op] := proposed[i]
	msg := sprintf("policy %q must not change %s (a field the hook protects); operation dropped", [name, op.path])
}

# Identical operations (ignoring the policy tag) are applied once, first wins:
# sorting [operation, index] puts copies next to each other, first one first.
# Copies share a path, so there are none in the common case.
_copies contains i if {
	not _common_case
	sorted := sort([[op, i] | some i, op in _proposed_ops])
	some k, [op, i] in sorted
	k > 0
	sorted[k - 1][0] == op
}

# Indices of dropped operations: malformed, protected, or copies.
_dropped := (_malformed | _protected_violations) | _copies

# METADATA
# title: The decision's patch
# description: |
#   The proposed operations that are well formed, leave protected fields alone
#   and are not copies of an earlier one, each tagged with "policy", in
#   decision order.
patch := [object.union(op, {"policy": name}) | some [name, op] in proposed] if {
	_common_case
} else := [object.union(op, {"policy": name}) |
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

# Paths written more than once (after copies were dropped); when every path
# of the patch is distinct there is nothing to compare.
_shared_paths contains path if {
	not _common_case
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

# The pod the decision's patch makes; undefined when it does not apply.
_patch_result := k8s.pod if {
	count(_proposed_ops) == 0
} else := _proposed_pod if {
	_common_case
} else := _proposed_pod if {
	count(_dropped) == 0
} else := json.patch(k8s.pod, patch)

# METADATA
# title: The patch applies
# description: True when the decision's patch applies to input.pod.
# scope: document
default patch_applies := false

patch_applies if _patch_result

# METADATA
# title: The pod the validating rules judge
# description: |
#   input.pod with the decision's patch applied, or input.pod itself when the
#   patch does not apply (the decision then carries a framework deny).
patched_pod := _patch_result if patch_applies

else := k8s.pod

# The validating rules of each active policy (the dynamic data reference
# reaches each policy package by name; the compiled form names the policies
# that have such rules). Policies with nothing to say are left out, so the
# lists below cost nothing for them.
_denies := {name: _ordered(msgs) | some name, msgs in compiled.denies} if {
	compiled.holds
	compiled.all_active
} else := {name: _ordered(msgs) |
	some name in active

	# regal ignore:unresolved-reference
	msgs := data.airflow.pod.policies[name].deny
	count(msgs) > 0
}

_warns := {name: _ordered(msgs) | some name, msgs in compiled.warns} if {
	compiled.holds
	compiled.all_active
} else := {name: _ordered(msgs) |
	some name in active

	# regal ignore:unresolved-reference
	msgs := data.airflow.pod.policies[name].warn
	count(msgs) > 0
}

# Phase 2 in one evaluation: [deny messages by policy, warn messages by
# policy] with input.pod as patched_pod. `with` is the point of the design
# here. The active set and the settings computed for the pod as Airflow sent
# it are carried in, so exemptions are judged once, on the original pod.
# When no operation is proposed the patched pod is input.pod: the rules are
# judged as they are, with what phase 1 computed for the pod reused.
_patched_pod_findings := [_denies, _warns] if {
	count(_proposed_ops) == 0
} else := [d, w] if {
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

# Configuration mistakes, on every decision (lib/config.rego, errors).
_framework_warn contains msg if some msg in config.errors

_framework_warn contains sprintf("exemption %q has no conditions and is ignored", [name]) if {
	some name, matcher in config.exempt
	_unconditional(matcher)
}

_framework_warn contains sprintf("exemption %q of policy %q has no conditions and is ignored", [name, policy]) if {
	some [policy, name, matcher] in _policy_matchers
	_unconditional(matcher)
}

# An expired exemption that would have matched the pod: the DAG's owner sees
# why the policies apply again.
_framework_warn contains sprintf("exemption %q expired on %s and no longer applies", [name, matcher.expires]) if {
	some name, matcher in config.exempt
	exemptions.expired(matcher)
	_matches(matcher)
}

_framework_warn contains msg if {
	some [policy, name, matcher] in _policy_matchers
	exemptions.expired(matcher)
	policy in _enabled
	_matches(matcher)
	msg := sprintf("exemption %q of policy %q expired on %s and no longer applies", [name, policy, matcher.expires])
}

_unconditional(matcher) if count(exemptions.conditions(matcher)) == 0

# --- the decision's lists -----------------------------------------------------

# Entries of the active policies, in policy order; the framework's findings
# (usually none) are merged in at the place of their name. Each policy gives
# at most messages.max_per_policy entries per list (then "... and N more"),
# each at most messages.max_message_chars long: the pod cannot make the
# decision large (lib/messages.rego).
# METADATA
# title: The decision's deny list
# description: "[{\"msg\", \"policy\"}]: the active policies' deny messages on patched_pod, and the framework's."
deny := _entries(_patched_pod_findings[0]) if {
	count(_framework_deny) == 0
} else := _entries(object.union(_patched_pod_findings[0], {reporter: sort(_framework_deny)}))

# METADATA
# title: The decision's warn list
# description: "[{\"msg\", \"policy\"}]: the active policies' warn messages on patched_pod, and the framework's."
warn := _entries(_patched_pod_findings[1]) if {
	count(_framework_warn) == 0
} else := _entries(object.union(_patched_pod_findings[1], {reporter: sort(_framework_warn)}))

_entries(by_policy) := [{"msg": messages.cut(_as_text(m), messages.max_message_chars), "policy": name} |
	some name in sort(object.keys(by_policy))
	some m in messages.limit(by_policy[name])
]

_as_text(m) := m if {
	is_string(m)
} else := m.msg if {
	is_string(m.msg)
} else := json.marshal(m)
