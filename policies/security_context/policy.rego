package airflow.pod.policies.security_context

# Adds the restricted Pod Security Standard fields to each container's
# securityContext where they are absent. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.ops

defaults := {
	"enabled": true,
	"params": {
		"values": {
			"runAsNonRoot": true,
			"allowPrivilegeEscalation": false,
			"capabilities": {"drop": ["ALL"]},
			"seccompProfile": {"type": "RuntimeDefault"},
		},
		"init_containers": true,
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"values": "object", "init_containers": "boolean"}

params := config.params("security_context")

# Fields a container inherits from the pod's securityContext: when the pod
# sets one, the container counts as having it.
_inherited := {
	"appArmorProfile",
	"runAsGroup",
	"runAsNonRoot",
	"runAsUser",
	"seccompProfile",
	"seLinuxOptions",
	"windowsOptions",
}

# Keys set in the pod's securityContext that containers inherit.
_pod_context := object.get(k8s.pod, ["spec", "securityContext"], {})

_pod_inherited contains key if {
	some key in _inherited
	_pod_context[key] != null
}

patch contains op if {
	not k8s.seccomp_annotated
	some entry in k8s.selected(params.init_containers)
	object.get(entry.container, "securityContext", null) == null
	some [suffix, value] in _fresh
	op := {"op": "add", "path": concat("", [entry.path, suffix]), "value": value}
}

patch contains op if {
	k8s.seccomp_annotated
	some entry in k8s.selected(params.init_containers)
	some op in _fill(entry)
}

patch contains op if {
	not k8s.seccomp_annotated
	some entry in k8s.selected(params.init_containers)
	object.get(entry.container, "securityContext", null) != null
	some op in _fill(entry)
}

_fill(entry) := ops.fill(
	entry.container, entry.path, "securityContext", params.values,
	_skip(entry.name, object.get(entry.container, "securityContext", {})),
)

_fresh := [[op.path, op.value] | some op in ops.fill({}, "", "securityContext", params.values, _pod_skip)]

# _skip(name, context): the top-level keys not to add to container name's
# context. A container without a securityContext (the common case) skips what
# the pod decides, computed once, and what its seccomp annotation rules out.
_skip(name, context) := _pod_skip | _seccomp(name) if {
	context == {}
} else := (((_pod_inherited | _root(context)) | _escalation(context)) | _os) | _seccomp(name)

_pod_skip := ((_pod_inherited | _root({})) | _escalation({})) | _os

# A Windows pod's containers reject the Linux-only fields (capabilities,
# seccompProfile, allowPrivilegeEscalation among them).
default _os := set()

_os := k8s.linux_only_container_fields if k8s.windows

# No seccompProfile that contradicts the container's deprecated seccomp
# annotation (or the pod's, which spoke for every container): the API server
# rejects the container's own mismatch, and an "unconfined" pod annotation is
# left for a deny policy to judge rather than silently overridden.
_seccomp(name) := {"seccompProfile"} if {
	k8s.seccomp_annotated
	annotation := k8s.seccomp_annotation(name)
	not k8s.seccomp_matches(annotation, params.values.seccompProfile)
} else := set()

# runAsNonRoot: true cannot start a container told to run as uid 0.
_root(context) := {"runAsNonRoot"} if {
	object.get(context, "runAsUser", object.get(_pod_context, "runAsUser", null)) == 0
} else := set()

# Kubernetes rejects allowPrivilegeEscalation: false next to privileged: true
# or an added CAP_SYS_ADMIN; deny_privileged judges those containers.
_escalation(context) := {"allowPrivilegeEscalation"} if {
	context.privileged == true
} else := {"allowPrivilegeEscalation"} if {
	some cap in context.capabilities.add
	trim_prefix(upper(cap), "CAP_") == "SYS_ADMIN"
} else := set()
