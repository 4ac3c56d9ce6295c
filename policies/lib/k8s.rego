# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
package airflow.pod.lib.k8s

# Pod accessors for policy authors. They read input.pod, so inside the
# validating phase (where the framework replaces input.pod with the patched
# pod) they describe the patched pod.

import data.airflow.pod.lib.messages

# The labels Airflow sets and the hook protects; policies never write them.
protected_labels := {
	"dag_id",
	"task_id",
	"run_id",
	"try_number",
	"map_index",
	"kubernetes_executor",
	"kubernetes_pod_operator",
	"airflow-worker",
	"airflow_version",
	"airflow_kpo_in_cluster",
}

# The name of the main container Airflow creates; it is never removed or renamed.
base_container := "base"

pod := object.get(input, "pod", {})

airflow := object.get(input, "airflow", {})

labels := object.get(pod, ["metadata", "labels"], {})

annotations := object.get(pod, ["metadata", "annotations"], {})

namespace := object.get(pod, ["metadata", "namespace"], "")

# containers: every container then every initContainer, in pod order, as
#   {"field": "containers" | "initContainers", "index": i, "name": ...,
#    "path": "/spec/containers/0", "label": "container \"base\"", "container": {...}}
# `path` is the JSON pointer of the container, `label` names it in messages
# (the name clipped: lib/messages.rego).
containers := array.concat(
	[{
		"field": "containers",
		"index": i,
		"name": c.name,
		"path": concat("", ["/spec/containers/", format_int(i, 10)]),
		"label": sprintf("container %q", [messages.clip(c.name)]),
		"container": c,
	} |
		some i, c in object.get(pod, ["spec", "containers"], [])
	],
	[{
		"field": "initContainers",
		"index": i,
		"name": c.name,
		"path": concat("", ["/spec/initContainers/", format_int(i, 10)]),
		"label": sprintf("initContainer %q", [messages.clip(c.name)]),
		"container": c,
	} |
		some i, c in object.get(pod, ["spec", "initContainers"], [])
	],
)

# selected(include_init): all containers when include_init is true, else only
# spec.containers (most mutating policies take an `init_containers` parameter).
selected(include_init) := containers if {
	include_init == true
} else := [e | some e in containers; e.field == "containers"]
