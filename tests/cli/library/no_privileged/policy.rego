package airflow.pod.no_privileged

import rego.v1

deny contains {"policy": "no_privileged", "msg": sprintf("container %q is privileged", [c.name])} if {
	some c in input.pod.spec.containers
	c.securityContext.privileged == true
}
