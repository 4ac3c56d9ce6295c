package airflow.pod.policies.pod_security_test

import data.airflow.pod.policies.pod_security

# _clean must imply that no check of any level fails. Every combination of
# the values the fast path looks at (absent, good, bad), on a container and
# on the pod: a pod the fast path accepts while a full check fails is named.
_context_values := {
	"allowPrivilegeEscalation": [null, false, true],
	"capabilities": [
		null, {}, {"drop": []}, {"drop": ["ALL"]}, {"drop": ["all"]},
		{"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, {"drop": ["ALL"], "add": ["CHOWN"]},
	],
	"runAsNonRoot": [null, true, false],
	"runAsUser": [null, 0],
	"seccompProfile": [null, {"type": "RuntimeDefault"}, {"type": "Unconfined"}],
}

_pod_contexts := [
	{},
	{"runAsNonRoot": true},
	{"seccompProfile": {"type": "RuntimeDefault"}},
	{"runAsNonRoot": true, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}},
	{"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 0},
]

_without_nulls(o) := {k: v | some k, v in o; v != null}

_generated_pods contains pod if {
	some ape in _context_values.allowPrivilegeEscalation
	some caps in _context_values.capabilities
	some non_root in _context_values.runAsNonRoot
	some user in _context_values.runAsUser
	some seccomp in _context_values.seccompProfile
	some pod_context in _pod_contexts
	context := _without_nulls({
		"allowPrivilegeEscalation": ape, "capabilities": caps, "runAsNonRoot": non_root,
		"runAsUser": user, "seccompProfile": seccomp,
	})
	pod := {"metadata": {"name": "p"}, "spec": {
		"securityContext": pod_context,
		"containers": [{"name": "base", "image": "busybox:1", "securityContext": context}],
	}}
}

test_clean_implies_no_failed_check_on_generated_pods if {
	_wrong_clean == set()

	# both paths are reached: the generator is no use if it only makes one kind
	count(_fast) >= 10
	count(_generated_pods) - count(_fast) >= 1000
}

# The generated pods the fast path accepts.
_fast contains pod if {
	some pod in _generated_pods

	# regal ignore:with-outside-test-context
	pod_security._clean with input as {"pod": pod}
}

# Those of them some full check fails, with the failures.
_wrong_clean contains [pod, failed] if {
	some pod in _fast

	# regal ignore:with-outside-test-context
	failed := pod_security.failed with input as {"pod": pod}
	count(failed) > 0
}
