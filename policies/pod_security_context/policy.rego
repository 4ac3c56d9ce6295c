package airflow.pod.policies.pod_security_context

# Adds pod-level securityContext defaults where absent. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.ops

defaults := {
	"enabled": true,
	"params": {"values": {
		"runAsNonRoot": true,
		"seccompProfile": {"type": "RuntimeDefault"},
	}},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"values": "object"}

params := config.params("pod_security_context")

patch contains op if {
	some op in ops.fill(k8s.pod.spec, "/spec", "securityContext", params.values, _skip)
}

# A pod (or one of its containers) told to run as uid 0 would not start
# with a pod-level runAsNonRoot: true.
_skip contains "runAsNonRoot" if k8s.pod.spec.securityContext.runAsUser == 0

_skip contains "runAsNonRoot" if {
	some entry in k8s.containers
	entry.container.securityContext.runAsUser == 0
}

# A Windows pod rejects the Linux-only pod-level fields (seccompProfile,
# fsGroup, runAsUser among them).
_skip contains field if {
	k8s.windows
	some field in k8s.linux_only_pod_fields
}

# No pod-level seccompProfile that contradicts a deprecated seccomp
# annotation: the API server rejects a pod field that disagrees with the pod
# annotation, and a container annotation (else the pod's) states what that
# container wants, which the inherited pod field would silently override.
# Annotations asking for "unconfined" are left for a deny policy to judge.
_skip contains "seccompProfile" if {
	annotation := k8s.annotations[k8s.seccomp_pod_annotation]
	not k8s.seccomp_matches(annotation, params.values.seccompProfile)
}

_skip contains "seccompProfile" if {
	k8s.seccomp_annotated
	some entry in k8s.containers
	annotation := k8s.seccomp_annotation(entry.name)
	not k8s.seccomp_matches(annotation, params.values.seccompProfile)
}
