package airflow.pod.policies.deny_privileged

# Denies privileged containers and added capabilities outside an allowlist.
# See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.messages

defaults := {
	"enabled": true,
	"params": {"allowed_capabilities": ["NET_BIND_SERVICE"]},
}

params := config.params("deny_privileged")

# "CAP_NET_ADMIN", "net_admin" and "NET_ADMIN" name one capability.
_normalise(capability) := trim_prefix(upper(capability), "CAP_")

_allowed contains _normalise(c) if some c in params.allowed_capabilities

deny contains sprintf("%s is privileged", [entry.label]) if {
	some entry in k8s.containers
	entry.container.securityContext.privileged == true
}

deny contains sprintf("%s adds capability %s, which is not allowed", [entry.label, messages.quote(capability)]) if {
	some entry in k8s.containers
	some capability in entry.container.securityContext.capabilities.add
	not _normalise(capability) in _allowed
}
