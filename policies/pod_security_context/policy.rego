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
