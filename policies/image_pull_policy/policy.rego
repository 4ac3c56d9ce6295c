package airflow.pod.policies.image_pull_policy

# Sets the pull policy where absent (or everywhere with `override`): each
# container's imagePullPolicy and each image volume's pullPolicy (the same
# pull, k8s.selected_images). See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.ops

defaults := {
	"enabled": false,
	"params": {
		"policy": "IfNotPresent",
		"override": false,
		"init_containers": true,
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"policy": "string", "override": "boolean", "init_containers": "boolean"}

params := config.params("image_pull_policy")

_valid := {"Always", "IfNotPresent", "Never"}

patch contains op if {
	params.policy in _valid
	some entry in k8s.selected_images(params.init_containers)
	some op in ops.add_if_absent(entry.source, entry.source_path, [entry.pull_policy], params.policy)
}

patch contains ops.replace_op(concat("", [entry.source_path, "/", entry.pull_policy]), params.policy) if {
	params.policy in _valid
	params.override == true
	some entry in k8s.selected_images(params.init_containers)
	current := entry.source[entry.pull_policy]
	current != params.policy
}

deny contains msg if {
	not params.policy in _valid
	msg := sprintf(
		"invalid configuration: policy must be one of \"Always\", \"IfNotPresent\", \"Never\", got %s",
		[json.marshal(params.policy)],
	)
}
