# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
package airflow.pod.lib.k8s

# Pod accessors for policy authors. They read input.pod, so inside the
# validating phase (where the framework replaces input.pod with the patched
# pod) they describe the patched pod.

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

# containers: every container, then every initContainer, then every
# ephemeralContainer, in pod order, as
#   {"field": "containers" | "initContainers" | "ephemeralContainers", "index": i,
#    "name": ..., "path": "/spec/containers/0", "label": "container \"base\"",
#    "container": {...}}
# `path` is the JSON pointer of the container, `label` names it in messages.
# Judging policies read this list: they see every container Kubernetes runs.
containers := array.concat(_mutable, _entries("ephemeralContainers", "ephemeralContainer"))

_regular := _entries("containers", "container")

_mutable := array.concat(_regular, _entries("initContainers", "initContainer"))

_entries(field, kind) := [{
	"field": field,
	"index": i,
	"name": c.name,
	"path": concat("", ["/spec/", field, "/", format_int(i, 10)]),
	"label": concat("", [kind, ` "`, c.name, `"`]),
	"container": c,
} |
	some i, c in object.get(pod, ["spec", field], [])
]

# selected(include_init): the containers a mutating policy changes:
# spec.containers, and spec.initContainers when include_init is true (most
# mutating policies take an `init_containers` parameter). Never the
# ephemeralContainers: Kubernetes refuses them when a pod is created and
# forbids resources, ports, probes and lifecycle on them, so a mutator has
# nothing to add there.
selected(include_init) := _mutable if {
	include_init == true
} else := _regular
