package airflow.pod.policies.require_resource_limits

# Denies containers without limits for the configured resources. Judged after
# the patch, so limits added by resource_defaults count. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s

defaults := {
	"enabled": false,
	"params": {
		"resources": ["memory"],
		"init_containers": true,
	},
}

params := config.params("require_resource_limits")

deny contains sprintf("%s has no %s limit", [entry.label, resource]) if {
	some entry in k8s.selected(params.init_containers)
	some resource in params.resources
	not entry.container.resources.limits[resource]
}
