package airflow.pod.policies.protect_enforcement

# Denies pods that would turn the hook's own enforcement off with data: a
# KubernetesExecutor worker runs the hook for its KubernetesPodOperator tasks,
# and the DAG author's pod_override reaches that worker's environment (which
# beats airflow.cfg) and, merged by name, the OPA sidecar it asks. Denied:
# environment variables named by `denied_env`, in any container; an envFrom
# prefix that can form such a name; and, in the pods the sidecar serves
# (`sidecar_pods`), a sidecar that differs from the shipped one (`sidecar`,
# `sidecar_volumes`), a native sidecar started before it, or no sidecar at
# all (`require_sidecar`). See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.images
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages

# The sidecar's expected values are deploy/kubernetes/opa-sidecar.yaml's
# (tests/test_kubernetes_manifests.py checks they agree).
defaults := {
	"enabled": true,
	"params": {
		# globs on environment variable names (compared in upper case)
		"denied_env": ["AIRFLOW__OPA_MUTATION__*", "AIRFLOW_CONFIG", "AIRFLOW_HOME"],
		"sidecar_name": "opa",
		# a matcher (lib/match.rego): the pods that carry the sidecar; null switches the sidecar checks off
		"sidecar_pods": {"launcher": "kubernetes_executor"},
		"require_sidecar": false,
		# field: expected value; [] (or "") expects the field absent, null leaves it unjudged
		"sidecar": {
			"image": "openpolicyagent/opa:1.22.3",
			"command": [],
			"args": [
				"run",
				"--server",
				"--addr=127.0.0.1:8181",
				"--diagnostic-addr=0.0.0.0:8282",
				"--authorization=basic",
				"--skip-version-check",
				"--log-level=info",
				"--config-file=/etc/opa/config.yaml",
				"/etc/opa/authz.rego",
				"/etc/opa/mask.rego",
			],
			"env": [],
			"envFrom": [
				{"configMapRef": {"name": "airflow-opa-sidecar-env"}},
				{"configMapRef": {"name": "airflow-opa-bundle-keys"}},
			],
			"volumeMounts": [
				{"name": "opa-config", "mountPath": "/etc/opa", "readOnly": true},
				{"name": "opa-persistence", "mountPath": "/var/lib/opa"},
			],
			"restartPolicy": "Always",
		},
		# volume name: its expected definition (without "name"); null leaves it unjudged
		"sidecar_volumes": {
			"opa-config": {"projected": {"sources": [{"configMap": {"name": "airflow-opa-sidecar"}}]}},
			"opa-persistence": {"emptyDir": {"sizeLimit": "64Mi"}},
		},
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {
	"denied_env": "string[]",
	"sidecar_name": "string",
	"sidecar_pods": "object|null",
	"require_sidecar": "boolean",
	"sidecar": "object",
	"sidecar_volumes": "object",
}

params := config.params("protect_enforcement")

_denied_env := [upper(p) | some p in params.denied_env; is_string(p)]

# --- environment ---------------------------------------------------------------

# --- deny ------------------------------------------------------------------------

# The hook's settings (and where Airflow finds its configuration), in any container.
deny contains msg if {
	some c in k8s.containers
	some entry in object.get(c.container, "env", [])
	_denied_name(entry.name)
	msg := sprintf(
		"%s sets environment variable %s, which can turn the hook's enforcement off (denied_env)",
		[c.label, messages.quote(entry.name)],
	)
}

# envFrom imports every key of a ConfigMap or Secret, which the pod does not
# show: those keys cannot be judged here (README.md). A prefix is in the pod,
# and one that some key could complete to a denied name is denied.
deny contains msg if {
	some c in k8s.containers
	some source in object.get(c.container, "envFrom", [])
	prefix := object.get(source, "prefix", "")
	prefix != ""
	some pattern in _denied_env
	could_form(pattern, upper(prefix))
	msg := sprintf(
		"%s imports environment variables with prefix %s (envFrom), which can form names denied by denied_env",
		[c.label, messages.quote(prefix)],
	)
}

# The sidecar, field by field.
deny contains msg if {
	some c in _sidecars
	some field, want in params.sidecar
	want != null
	_differs(field, object.get(c.container, field, null), want)
	msg := sprintf(
		"%s is the enforcement sidecar, but its field %s differs from the shipped sidecar's (sidecar.%s)",
		[c.label, field, field],
	)
}

# The volumes the sidecar mounts, as the pod defines them.
deny contains msg if {
	count(_sidecars) > 0
	some name, want in params.sidecar_volumes
	want != null
	some volume in object.get(k8s.pod, ["spec", "volumes"], [])
	volume.name == name
	object.remove(volume, ["name"]) != _without_nulls(want)
	msg := sprintf(
		"volume %s of the enforcement sidecar differs from the shipped one (sidecar_volumes)",
		[messages.quote(name)],
	)
}

deny contains msg if {
	count(_sidecars) > 0
	some name, want in params.sidecar_volumes
	want != null
	not _has_volume(name)
	msg := sprintf("volume %s of the enforcement sidecar is missing (sidecar_volumes)", [messages.quote(name)])
}

# Init containers start in order, a native sidecar (restartPolicy Always)
# staying up: one before the enforcement sidecar could bind its addresses
# (the hook's url, the probes' port) first. One that runs to completion is
# gone before the sidecar starts.
deny contains msg if {
	some s in _sidecars
	s.field == "initContainers"
	some i, c in k8s.pod.spec.initContainers
	i < s.index
	c.restartPolicy == "Always"
	msg := sprintf(
		"initContainer %s runs as a sidecar (restartPolicy Always) before the enforcement sidecar %s %s",
		[messages.quote(c.name), messages.quote(params.sidecar_name), "and could take its ports"],
	)
}

# Without its sidecar, whatever listens on the hook's url answers for OPA.
deny contains msg if {
	params.require_sidecar == true
	_sidecar_pod
	not _init_sidecar
	msg := sprintf(
		"pod has no enforcement sidecar: an init container named %s (require_sidecar)",
		[messages.quote(params.sidecar_name)],
	)
}

# --- environment -------------------------------------------------------------------

_denied_name(name) if {
	is_string(name)
	some pattern in _denied_env
	glob.match(pattern, null, upper(name))
}

# could_form(pattern, prefix): prefix + some non-empty key can match pattern.
# The pattern's literal head (up to its first glob character) decides:
# conservative, as a key may hold anything.
could_form(pattern, prefix) if {
	not regex.match(`[*?\[{\\]`, pattern)
	startswith(pattern, prefix)
	pattern != prefix
}

could_form(pattern, prefix) if {
	head := regex.split(`[*?\[{\\]`, pattern)[0]
	head != pattern
	_overlap(head, prefix)
}

_overlap(head, prefix) if startswith(head, prefix)

_overlap(head, prefix) if startswith(prefix, head)

# --- the sidecar -----------------------------------------------------------------

_sidecar_pod if {
	matcher := params.sidecar_pods
	is_object(matcher)
	count(matcher) > 0
	match.applies(matcher, k8s.pod, k8s.airflow)
}

# Containers of any kind named like the sidecar, in the pods it serves.
_sidecars := [c |
	_sidecar_pod
	some c in k8s.containers
	c.name == params.sidecar_name
]

_init_sidecar if {
	some s in _sidecars
	s.field == "initContainers"
}

# Kubernetes reads both spellings of an image alike (docker.io implied).
_differs("image", have, want) if {
	have != want
	not _same_image(have, want)
}

_differs(field, have, want) if {
	field != "image"
	_normal(have) != _normal(want)
}

_same_image(have, want) if images.parse(have) == images.parse(want)

# The API server drops empty lists and strings: they mean "absent".
_normal(value) := null if {
	value in {[], {}, ""}
} else := value

_has_volume(name) if {
	some volume in object.get(k8s.pod, ["spec", "volumes"], [])
	volume.name == name
}

_without_nulls(value) := {k: v |
	some k, v in value
	v != null
}
