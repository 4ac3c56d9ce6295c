package airflow.pod.policies.deny_privileged

# Denies privileged containers and added capabilities outside an allowlist
# (by default the baseline Pod Security Standard's set). See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages

defaults := {
	"enabled": true,
	"params": {
		# the baseline Pod Security Standard's set (pod_security's capabilities_baseline)
		"allowed_capabilities": [
			"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
			"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
		],
		# globs on the container image; matching containers are not judged
		"exempt_images": [],
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"allowed_capabilities": "string[]", "exempt_images": "string[]"}

params := config.params("deny_privileged")

# "CAP_NET_ADMIN", "net_admin" and "NET_ADMIN" name one capability.
_normalise(capability) := trim_prefix(upper(capability), "CAP_")

_allowed contains _normalise(c) if some c in params.allowed_capabilities

# The containers judged: all but those whose image an exemption names.
_judged := k8s.containers if {
	count(params.exempt_images) == 0
} else := [entry |
	some entry in k8s.containers
	not match.any_glob(params.exempt_images, entry.container.image)
]

deny contains sprintf("%s is privileged", [entry.label]) if {
	some entry in _judged
	entry.container.securityContext.privileged == true
}

deny contains sprintf("%s adds capability %s, which is not allowed", [entry.label, messages.quote(capability)]) if {
	some entry in _judged
	some capability in entry.container.securityContext.capabilities.add
	not _normalise(capability) in _allowed
}
