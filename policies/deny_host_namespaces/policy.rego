package airflow.pod.policies.deny_host_namespaces

# Denies pods sharing the node's network, PID or IPC namespace. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s

defaults := {
	"enabled": true,
	# fields among hostNetwork, hostPID, hostIPC that pods may set to true
	"params": {"allowed": []},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"allowed": "string[]"}

params := config.params("deny_host_namespaces")

deny contains sprintf("pod sets %s: true", [field]) if {
	some field in ["hostIPC", "hostNetwork", "hostPID"]
	k8s.pod.spec[field] == true
	not field in params.allowed
}
