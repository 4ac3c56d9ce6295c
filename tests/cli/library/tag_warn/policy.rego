package airflow.pod.tag_warn

import rego.v1

warn contains {"policy": "tag_warn", "msg": sprintf("container %q uses the mutable tag latest", [c.name])} if {
	some c in input.pod.spec.containers
	endswith(c.image, ":latest")
}
