package airflow.pod.policies.protect_enforcement_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.protect_enforcement

# The OPA sidecar as deploy/kubernetes/opa-sidecar.yaml ships it (the fields
# the policy compares, and some it leaves to other policies).
_sidecar := {
	"name": "opa",
	"image": "openpolicyagent/opa:1.22.3",
	"imagePullPolicy": "IfNotPresent",
	"restartPolicy": "Always",
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
	"envFrom": [
		{"configMapRef": {"name": "airflow-opa-sidecar-env"}},
		{"configMapRef": {"name": "airflow-opa-bundle-keys"}},
	],
	"resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
	"volumeMounts": [
		{"name": "opa-config", "mountPath": "/etc/opa", "readOnly": true},
		{"name": "opa-persistence", "mountPath": "/var/lib/opa"},
	],
}

_volumes := [
	{"name": "logs", "emptyDir": {}},
	{"name": "opa-config", "projected": {"sources": [{"configMap": {"name": "airflow-opa-sidecar"}}]}},
	{"name": "opa-persistence", "emptyDir": {"sizeLimit": "64Mi"}},
]

# A KubernetesExecutor worker pod built from the shipped pod template.
_worker := json.patch(fx.worker_pod, [
	{"op": "add", "path": "/spec/initContainers", "value": [_sidecar]},
	{"op": "add", "path": "/spec/volumes", "value": _volumes},
])

_ke(pod) := {"pod": pod, "airflow": fx.ke_airflow}

_env(pod, path, entries) := fx.put(pod, path, entries)

# --- environment variables -----------------------------------------------------

test_the_shipped_worker_passes if {
	protect_enforcement.deny == set() with input as _ke(_worker)
	protect_enforcement.deny == set() with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
}

# Issue 22, item 6: a pod_override setting the hook's mode on the worker.
test_the_hooks_variables_are_denied_in_every_container if {
	base := fx.put(_worker, "/spec/containers/0/env/-", {"name": "AIRFLOW__OPA_MUTATION__MODE", "value": "dry-run"})
	msg := concat("", [
		`container "base" sets environment variable "AIRFLOW__OPA_MUTATION__MODE", `,
		"which can turn the hook's enforcement off (denied_env)",
	])
	protect_enforcement.deny == {msg} with input as _ke(base)
	init := fx.put(fx.kpo_pod, "/spec/initContainers/0/env", [{"name": "AIRFLOW__OPA_MUTATION__URL", "value": "http://x"}])
	init_msg := concat("", [
		`initContainer "fetch-data" sets environment variable "AIRFLOW__OPA_MUTATION__URL", `,
		"which can turn the hook's enforcement off (denied_env)",
	])
	protect_enforcement.deny == {init_msg} with input as {"pod": init, "airflow": fx.kpo_airflow}
	debug := fx.put(fx.kpo_pod, "/spec/ephemeralContainers", [{
		"name": "debug", "image": "busybox:1.36",
		"env": [{"name": "AIRFLOW__OPA_MUTATION__FAIL_MODE", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}],
	}])
	debug_msg := concat("", [
		`ephemeralContainer "debug" sets environment variable "AIRFLOW__OPA_MUTATION__FAIL_MODE", `,
		"which can turn the hook's enforcement off (denied_env)",
	])
	protect_enforcement.deny == {debug_msg} with input as {"pod": debug}
}

# Names are compared in upper case (a harmless over-approximation), and the
# config file and home Airflow reads are denied too.
test_case_and_the_airflow_configuration_path if {
	pod := _env(fx.worker_pod, "/spec/containers/0/env", [
		{"name": "airflow__opa_mutation__mode", "value": "dry-run"},
		{"name": "AIRFLOW_CONFIG", "value": "/tmp/cfg/airflow.cfg"},
		{"name": "AIRFLOW_HOME", "value": "/tmp/home"},
		{"name": "AIRFLOW__CORE__LOAD_EXAMPLES", "value": "False"},
		{"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"},
	])
	denied := {name |
		some msg in protect_enforcement.deny
		name := regex.find_n(`"[^"]+"`, msg, 2)[1]
	} with input as _ke(pod)
	denied == {`"airflow__opa_mutation__mode"`, `"AIRFLOW_CONFIG"`, `"AIRFLOW_HOME"`}
}

test_denied_env_is_configurable if {
	pod := _env(fx.worker_pod, "/spec/containers/0/env", [
		{"name": "AIRFLOW_HOME", "value": "/opt/airflow"},
		{"name": "PYTHONPATH", "value": "/tmp/shadow"},
	])
	delta := fx.params("protect_enforcement", {"denied_env": ["AIRFLOW__OPA_MUTATION__*", "PYTHONPATH"]})
	msg := concat("", [
		`container "base" sets environment variable "PYTHONPATH", `,
		"which can turn the hook's enforcement off (denied_env)",
	])
	protect_enforcement.deny == {msg} with input as _ke(pod) with data.airflow.pod.lib.config.user as delta
}

# envFrom: the keys of a ConfigMap or Secret are not in the pod and cannot be
# judged; a prefix that can make a denied name out of any key is denied.
_from(prefix) := fx.put(fx.worker_pod, "/spec/containers/0/envFrom", [{
	"prefix": prefix,
	"configMapRef": {"name": "settings"},
}])

test_an_env_from_prefix_that_can_form_a_denied_name if {
	msg := concat("", [
		`container "base" imports environment variables with prefix "AIRFLOW__" (envFrom), `,
		"which can form names denied by denied_env",
	])
	protect_enforcement.deny == {msg} with input as _ke(_from("AIRFLOW__"))
	count(protect_enforcement.deny) == 1 with input as _ke(_from("AIRFLOW__OPA_MUTATION__"))
	count(protect_enforcement.deny) == 1 with input as _ke(_from("airflow__opa_mutation__m"))
	count(protect_enforcement.deny) == 1 with input as _ke(_from("AIRFLOW_"))
	count(protect_enforcement.deny) == 1 with input as _ke(_from("A"))
}

test_env_from_prefixes_that_cannot if {
	protect_enforcement.deny == set() with input as _ke(_from("APP_"))
	protect_enforcement.deny == set() with input as _ke(_from("AIRFLOW_HOME"))
	protect_enforcement.deny == set() with input as _ke(_from("AIRFLOW_CONN_"))
	protect_enforcement.deny == set() with input as _ke(_from("AIRFLOW__DATABASE__"))
	protect_enforcement.deny == set() with input as _ke(_from(""))
	pod := fx.put(fx.worker_pod, "/spec/containers/0/envFrom", [{"secretRef": {"name": "creds"}}])
	protect_enforcement.deny == set() with input as _ke(pod)
}

test_prefix_head_of_globs if {
	protect_enforcement.could_form("AIRFLOW__OPA_MUTATION__*", "AIRFLOW__OPA_MUTATION__MODE_")
	protect_enforcement.could_form("A?C", "A")
	not protect_enforcement.could_form("A?C", "B")
	not protect_enforcement.could_form("AIRFLOW_HOME", "AIRFLOW_HOME")
	not protect_enforcement.could_form("AIRFLOW_HOME", "AIRFLOW_HOMEX")
}

# --- the sidecar ----------------------------------------------------------------

_sidecar_msg(field) := sprintf(
	`initContainer "opa" is the enforcement sidecar, but its field %s differs from the shipped sidecar's (sidecar.%s)`,
	[field, field],
)

# Issue 22, item 6: pod_override containers merge by name, so an override can
# replace the sidecar's args (here: an OPA that allows everything).
test_the_sidecars_args_replaced if {
	pod := fx.put(_worker, "/spec/initContainers/0/args", ["run", "--server", "--addr=127.0.0.1:8181", "/tmp/allow.rego"])
	protect_enforcement.deny == {_sidecar_msg("args")} with input as _ke(pod)
}

test_every_compared_field if {
	image := fx.put(_worker, "/spec/initContainers/0/image", "evil.example.net/opa:1.22.3")
	protect_enforcement.deny == {_sidecar_msg("image")} with input as _ke(image)
	command := fx.put(_worker, "/spec/initContainers/0/command", ["/bin/sh", "-c"])
	protect_enforcement.deny == {_sidecar_msg("command")} with input as _ke(command)
	env := fx.put(_worker, "/spec/initContainers/0/env", [{"name": "AOM_BUNDLE_SERVICE_URL", "value": "https://evil"}])
	protect_enforcement.deny == {_sidecar_msg("env")} with input as _ke(env)
	env_from := fx.put(_worker, "/spec/initContainers/0/envFrom/-", {"configMapRef": {"name": "mine"}})
	protect_enforcement.deny == {_sidecar_msg("envFrom")} with input as _ke(env_from)
	keys := fx.put(_worker, "/spec/initContainers/0/volumeMounts/-", {"name": "mine", "mountPath": "/etc/opa/keys"})
	protect_enforcement.deny == {_sidecar_msg("volumeMounts")} with input as _ke(keys)
	restart := json.patch(_worker, [{"op": "remove", "path": "/spec/initContainers/0/restartPolicy"}])
	protect_enforcement.deny == {_sidecar_msg("restartPolicy")} with input as _ke(restart)
}

# Kubernetes reads both spellings as one image; the API server drops empty lists.
test_equivalent_spellings_pass if {
	pod := json.patch(_worker, [
		{"op": "replace", "path": "/spec/initContainers/0/image", "value": "docker.io/openpolicyagent/opa:1.22.3"},
		{"op": "add", "path": "/spec/initContainers/0/env", "value": []},
		{"op": "add", "path": "/spec/initContainers/0/command", "value": []},
	])
	protect_enforcement.deny == set() with input as _ke(pod)
}

# A regular container named like the sidecar is judged too.
test_a_regular_container_named_like_the_sidecar if {
	pod := fx.put(fx.worker_pod, "/spec/containers/-", object.union(_sidecar, {"args": ["run", "--server"]}))
	msgs := protect_enforcement.deny with input as _ke(pod)
	msg := concat("", [
		`container "opa" is the enforcement sidecar, `,
		"but its field args differs from the shipped sidecar's (sidecar.args)",
	])
	msg in msgs
}

# null: the field is not compared; the expected values are parameters.
test_expected_values_are_parameters if {
	pod := fx.put(_worker, "/spec/initContainers/0/image", "registry.example.com/mirror/opa:1.22.3")
	delta := fx.params("protect_enforcement", {"sidecar": {"image": "registry.example.com/mirror/opa:1.22.3"}})
	protect_enforcement.deny == set() with input as _ke(pod) with data.airflow.pod.lib.config.user as delta
	uncompared := fx.params("protect_enforcement", {"sidecar": {"image": null}})
	protect_enforcement.deny == set() with input as _ke(pod) with data.airflow.pod.lib.config.user as uncompared
}

test_the_sidecars_volumes if {
	keys := fx.put(_worker, "/spec/volumes/1", {"name": "opa-config", "configMap": {"name": "my-keys"}})
	pod := json.patch(keys, [{"op": "remove", "path": "/spec/volumes/2"}])
	msgs := protect_enforcement.deny with input as _ke(pod)
	`volume "opa-config" of the enforcement sidecar differs from the shipped one (sidecar_volumes)` in msgs
	missing := json.patch(_worker, [{"op": "remove", "path": "/spec/volumes/2"}])
	missing_msg := `volume "opa-persistence" of the enforcement sidecar is missing (sidecar_volumes)`
	protect_enforcement.deny == {missing_msg} with input as _ke(missing)
	unjudged := fx.params("protect_enforcement", {"sidecar_volumes": {"opa-persistence": null}})
	protect_enforcement.deny == set() with input as _ke(missing) with data.airflow.pod.lib.config.user as unjudged
}

# Only the pods the sidecar serves: a KubernetesPodOperator pod's container
# named "opa" is the task's own business, and a launcher only the pod's
# labels claim never makes a pod a sidecar pod.
test_other_pods_may_name_a_container_opa if {
	container := {"name": "opa", "image": "openpolicyagent/opa:1.23.0", "args": ["test", "/p"]}
	pod := fx.put(fx.kpo_pod, "/spec/containers/-", container)
	protect_enforcement.deny == set() with input as {"pod": pod, "airflow": fx.kpo_airflow}
	untrusted := object.union(fx.ke_airflow, {"untrusted": ["dag_id", "task_id", "launcher"]})
	tampered := fx.put(_worker, "/spec/initContainers/0/args", ["run"])
	protect_enforcement.deny == set() with input as {"pod": tampered, "airflow": untrusted}
	off := fx.params("protect_enforcement", {"sidecar_pods": null})
	protect_enforcement.deny == set() with input as _ke(tampered) with data.airflow.pod.lib.config.user as off
}

# A native sidecar started before OPA could hold OPA's ports (the hook's url,
# the probes' port) first; a run-to-completion init container cannot.
test_no_native_sidecar_before_the_enforcement_sidecar if {
	squat := {"name": "squat", "image": "python:3.12", "restartPolicy": "Always", "args": ["python", "-m", "http.server"]}
	before := fx.put(_worker, "/spec/initContainers/0", squat)
	msg := concat("", [
		`initContainer "squat" runs as a sidecar (restartPolicy Always) `,
		`before the enforcement sidecar "opa" and could take its ports`,
	])
	protect_enforcement.deny == {msg} with input as _ke(before)
	after := fx.put(_worker, "/spec/initContainers/-", squat)
	protect_enforcement.deny == set() with input as _ke(after)
	git_sync_init := {"name": "git-sync-init", "image": "registry.k8s.io/git-sync/git-sync:v4.4.0"}
	git_sync := fx.put(_worker, "/spec/initContainers/0", git_sync_init)
	protect_enforcement.deny == set() with input as _ke(git_sync)
}

_required := fx.params("protect_enforcement", {"require_sidecar": true})

test_require_sidecar if {
	protect_enforcement.deny == set() with input as _ke(fx.worker_pod)
	msg := `pod has no enforcement sidecar: an init container named "opa" (require_sidecar)`
	protect_enforcement.deny == {msg} with input as _ke(fx.worker_pod) with data.airflow.pod.lib.config.user as _required
	protect_enforcement.deny == set() with input as _ke(_worker) with data.airflow.pod.lib.config.user as _required
	protect_enforcement.deny == set() with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
		with data.airflow.pod.lib.config.user as _required
}

# Pod strings are clipped in messages (lib/messages.rego).
test_long_names_are_clipped if {
	name := concat("", ["AIRFLOW__OPA_MUTATION__", concat("", ["X" | some _ in numbers.range(1, 5000)])])
	pod := _env(fx.worker_pod, "/spec/containers/0/env", [{"name": name, "value": "1"}])
	[msg] := [m | some m in protect_enforcement.deny] with input as _ke(pod)
	count(msg) < 500
}

# Every parameter has a type in the schema, and nothing else does.
test_the_schema_lists_every_parameter if {
	object.keys(protect_enforcement.schema) == object.keys(protect_enforcement.defaults.params)
}
