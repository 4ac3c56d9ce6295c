package airflow.pod.lib.k8s

# Pod accessors for policy authors. They read input.pod, so inside the
# validating phase (where the framework replaces input.pod with the patched
# pod) they describe the patched pod.

import data.airflow.pod.lib.messages

# METADATA
# title: Airflow's labels, as JSON pointers
# description: |
#   The labels Airflow tracks its pods by: the one list in Rego. The
#   framework drops and denies any operation writing them (or their
#   ancestors). Pointers, because the framework matches operation paths
#   against them on every query; protected_labels has the keys. The hook's
#   copy (config.AIRFLOW_LABELS) is tested equal (tests/test_protected_labels.py).
protected_label_paths := {
	"/metadata/labels/dag_id",
	"/metadata/labels/task_id",
	"/metadata/labels/run_id",
	"/metadata/labels/try_number",
	"/metadata/labels/map_index",
	"/metadata/labels/kubernetes_executor",
	"/metadata/labels/kubernetes_pod_operator",
	"/metadata/labels/airflow-worker",
	"/metadata/labels/airflow_version",
	"/metadata/labels/airflow_kpo_in_cluster",
}

# METADATA
# title: Airflow's labels
# description: The keys of protected_label_paths; policies never write them.
protected_labels contains trim_prefix(path, "/metadata/labels/") if some path in protected_label_paths

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
# `path` is the JSON pointer of the container, `label` names it in messages
# (the name clipped: lib/messages.rego). Judging policies read this list: they
# see every container Kubernetes runs.
containers := array.concat(_mutable, _entries("ephemeralContainers", "ephemeralContainer"))

_regular := _entries("containers", "container")

_mutable := array.concat(_regular, _entries("initContainers", "initContainer"))

_entries(field, kind) := [{
	"field": field,
	"index": i,
	"name": c.name,
	"path": concat("", ["/spec/", field, "/", format_int(i, 10)]),
	"label": sprintf("%s %q", [kind, messages.clip(c.name)]),
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

# images: every image reference the pod makes the runtime pull: each
# container's image (in `containers` order), then each image volume's
# reference (spec.volumes[].image, Kubernetes 1.33+: pulled by the same
# runtime, so a policy on images that skipped them could be walked around), as
#   {"kind": "container" | "initContainer" | "ephemeralContainer" | "volume",
#    "label": "container \"base\"" | "volume \"model\"", "image": ...,
#    "path": "/spec/containers/0/image" | "/spec/volumes/2/image/reference",
#    "source": {...}, "source_path": "/spec/containers/0" | "/spec/volumes/2/image",
#    "pull_policy": "imagePullPolicy" | "pullPolicy"}
# `path` points at the reference, `label` names its owner in messages;
# `source` is the object holding the reference and its pull policy (the
# container, or the volume's `image`), at `source_path`, under the key
# `pull_policy`. Entries without a reference are left out (the API server
# requires one). Policies that judge images read this list.
images := array.concat([_container_image(e) | some e in containers; _has_image(e.container)], image_volumes)

# selected_images(include_init): the images a mutating policy changes: those
# of selected(include_init), then every image volume (a volume belongs to no
# container kind; ephemeral containers are never mutated, see selected).
selected_images(include_init) := array.concat(
	[_container_image(e) | some e in selected(include_init); _has_image(e.container)],
	image_volumes,
)

# image_volumes: the image volumes, in pod order, as `images` entries.
image_volumes := [{
	"kind": "volume",
	"label": sprintf("volume %q", [messages.clip(object.get(v, "name", ""))]),
	"image": source.reference,
	"path": concat("", [source_path, "/reference"]),
	"source": source,
	"source_path": source_path,
	"pull_policy": "pullPolicy",
} |
	some i, v in object.get(pod, ["spec", "volumes"], [])
	source := v.image
	"reference" in object.keys(source)
	source_path := concat("", ["/spec/volumes/", format_int(i, 10), "/image"])
]

_has_image(container) if "image" in object.keys(container)

_container_image(entry) := {
	"kind": _kinds[entry.field],
	"label": entry.label,
	"image": entry.container.image,
	"path": concat("", [entry.path, "/image"]),
	"source": entry.container,
	"source_path": entry.path,
	"pull_policy": "imagePullPolicy",
}

_kinds := {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}

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

# seccomp_annotated: the pod carries a deprecated seccomp annotation, for
# itself or a container. Without one (the common case) no container's
# annotation needs looking up.
seccomp_annotated if {
	some key, _ in annotations
	contains(key, "seccomp.security.alpha.kubernetes.io/")
}

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
