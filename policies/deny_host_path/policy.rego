package airflow.pod.policies.deny_host_path

# Denies hostPath volumes outside the allowed path prefixes. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.messages

defaults := {
	"enabled": true,
	"params": {"allowed_prefixes": []},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"allowed_prefixes": "string[]"}

params := config.params("deny_host_path")

deny contains msg if {
	some volume in k8s.pod.spec.volumes
	path := volume.hostPath.path
	not allowed(path)
	msg := sprintf(
		"volume %s mounts host path %s, which is outside the allowed prefixes",
		[messages.quote(volume.name), messages.quote(path)],
	)
}

# allowed(path): the path lies under an allowed prefix, component by
# component ("/var/log" allows "/var/log/airflow", not "/var/logs"), and
# has no ".." component.
allowed(path) if {
	not ".." in split(path, "/")
	some prefix in params.allowed_prefixes
	_under(path, trim_suffix(prefix, "/"))
}

_under(path, prefix) if trim_suffix(path, "/") == prefix

_under(path, prefix) if startswith(path, concat("", [prefix, "/"]))
