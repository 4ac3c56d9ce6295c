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

# containers: every container then every initContainer, in pod order, as
#   {"field": "containers" | "initContainers", "index": i, "name": ...,
#    "path": "/spec/containers/0", "label": "container \"base\"", "container": {...}}
# `path` is the JSON pointer of the container, `label` names it in messages.
containers := array.concat(
	[{
		"field": "containers",
		"index": i,
		"name": c.name,
		"path": concat("", ["/spec/containers/", format_int(i, 10)]),
		"label": concat("", [`container "`, c.name, `"`]),
		"container": c,
	} |
		some i, c in object.get(pod, ["spec", "containers"], [])
	],
	[{
		"field": "initContainers",
		"index": i,
		"name": c.name,
		"path": concat("", ["/spec/initContainers/", format_int(i, 10)]),
		"label": concat("", [`initContainer "`, c.name, `"`]),
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

# windows: the pod declares spec.os.name "windows". The API server then
# rejects the Linux-only securityContext fields below ("cannot be set for a
# windows pod"), so mutators must not add them to such a pod.
windows if pod.spec.os.name == "windows"

# Pod-level securityContext fields the API server forbids on a Windows pod.
linux_only_pod_fields := {
	"appArmorProfile",
	"fsGroup",
	"fsGroupChangePolicy",
	"runAsGroup",
	"runAsUser",
	"seccompProfile",
	"seLinuxChangePolicy",
	"seLinuxOptions",
	"supplementalGroups",
	"supplementalGroupsPolicy",
	"sysctls",
}

# Container securityContext fields the API server forbids on a Windows pod.
linux_only_container_fields := {
	"allowPrivilegeEscalation",
	"appArmorProfile",
	"capabilities",
	"privileged",
	"procMount",
	"readOnlyRootFilesystem",
	"runAsGroup",
	"runAsUser",
	"seccompProfile",
	"seLinuxOptions",
}

# The deprecated seccomp annotations. Kubernetes no longer acts on them, but
# still rejects a pod whose seccompProfile field disagrees with the
# annotation of the same scope ("seccomp type in annotation and field must
# match"): the pod's field with the pod annotation, a container's field with
# that container's annotation.
seccomp_pod_annotation := "seccomp.security.alpha.kubernetes.io/pod"

seccomp_container_annotation_prefix := "container.seccomp.security.alpha.kubernetes.io/"

# seccomp_annotation(name): the seccomp annotation that speaks for container
# `name`: its own, else the pod's (which meant every container when it was
# honoured). Undefined when neither is set.
seccomp_annotation(name) := value if {
	value := annotations[concat("", [seccomp_container_annotation_prefix, name])]
} else := annotations[seccomp_pod_annotation]

# seccomp_matches(annotation, profile): the seccompProfile field `profile`
# says what the annotation value says, by the API server's own rule.
seccomp_matches(annotation, profile) if {
	profile.type == "RuntimeDefault"
	annotation in {"runtime/default", "docker/default"}
}

seccomp_matches(annotation, profile) if {
	profile.type == "Unconfined"
	annotation == "unconfined"
}

seccomp_matches(annotation, profile) if {
	profile.type == "Localhost"
	annotation == concat("", ["localhost/", profile.localhostProfile])
}
