package airflow.pod.policies.deny_host_path_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.deny_host_path

_pod(paths) := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/volumes", "value": [v |
	some i, path in paths
	v := {"name": sprintf("v%d", [i]), "hostPath": {"path": path}}
]}])

_config := {"policies": {"deny_host_path": {"params": {"allowed_prefixes": ["/var/log/airflow/", "/data"]}}}}

test_host_paths_are_denied_by_default if {
	msg := `volume "v0" mounts host path "/var/run/docker.sock", which is outside the allowed prefixes`
	deny_host_path.deny == {msg} with input as {"pod": _pod(["/var/run/docker.sock"])}
}

test_prefixes_match_whole_components if {
	pod := _pod(["/var/log/airflow", "/var/log/airflow/tasks", "/data/x", "/database", "/data/../etc"])
	deny_host_path.deny == {
		`volume "v3" mounts host path "/database", which is outside the allowed prefixes`,
		`volume "v4" mounts host path "/data/../etc", which is outside the allowed prefixes`,
	} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _config
}

test_other_volumes_pass if {
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/volumes", "value": [{"name": "logs", "emptyDir": {}}]}])
	deny_host_path.deny == set() with input as {"pod": pod}
}

# Pod strings are clipped in messages (lib/messages.rego): a padded path
# cannot make the decision large.
test_long_paths_are_clipped if {
	path := concat("", ["/", concat("", ["x" | some _ in numbers.range(1, 5000)])])
	[msg] := [m | some m in deny_host_path.deny] with input as {"pod": _pod([path])}
	count(msg) < 400
	contains(msg, "…[5001 characters]")
}

# A writable host mount under an allowed prefix is an escape (a writable
# /var/log lets a task plant symlinks the kubelet follows as root), so an
# allowed prefix is read-only unless its entry says read_only: false, and
# every mount of such a volume, in every container kind, must be readOnly.
_rw_config := {"policies": {"deny_host_path": {"params": {"allowed_prefixes": [
	"/var/log/airflow",
	{"path": "/data", "read_only": false},
	{"path": "/srv"},
	{"path": "/opt", "read_only": true},
	{"read_only": false},
]}}}}

_rw_pod := json.patch(fx.worker_pod, [
	{"op": "add", "path": "/spec/volumes", "value": [
		{"name": "logs", "hostPath": {"path": "/var/log/airflow/tasks"}},
		{"name": "data", "hostPath": {"path": "/data/x"}},
		{"name": "srv", "hostPath": {"path": "/srv/a"}},
		{"name": "opt", "hostPath": {"path": "/opt"}},
		{"name": "scratch", "emptyDir": {}},
		{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}},
	]},
	{"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [
		{"name": "logs", "mountPath": "/logs-ro", "readOnly": true},
		{"name": "logs", "mountPath": "/logs-rw", "subPath": "tasks"},
		{"name": "data", "mountPath": "/data"},
		{"name": "srv", "mountPath": "/srv", "readOnly": false},
		{"name": "opt", "mountPath": "/opt", "readOnly": true, "recursiveReadOnly": "Enabled"},
		{"name": "scratch", "mountPath": "/scratch"},
		{"name": "sock", "mountPath": "/var/run/docker.sock"},
	]},
	{"op": "add", "path": "/spec/containers/-", "value": {
		"name": "shipper", "image": "fluent/fluent-bit:3.1",
		"volumeMounts": [{"name": "logs", "mountPath": "/logs", "readOnly": true, "subPath": "tasks"}],
	}},
	{"op": "add", "path": "/spec/initContainers", "value": [{
		"name": "prepare", "image": "busybox:1.36",
		"volumeMounts": [{"name": "opt", "mountPath": "/opt", "readOnly": false}],
	}]},
	{"op": "add", "path": "/spec/ephemeralContainers", "value": [{
		"name": "debug", "image": "busybox:1.36",
		"volumeMounts": [{"name": "logs", "mountPath": "/logs"}],
	}]},
])

_rw_msg(container, volume, mount, path) := sprintf(
	"%s mounts volume %q (host path %q) at %q without readOnly: true; its allowed prefix is read-only",
	[container, volume, path, mount],
)

test_read_write_mounts_of_read_only_prefixes_are_denied if {
	deny_host_path.deny == {
		_rw_msg(`container "base"`, "logs", "/logs-rw", "/var/log/airflow/tasks"),
		_rw_msg(`container "base"`, "srv", "/srv", "/srv/a"),
		_rw_msg(`initContainer "prepare"`, "opt", "/opt", "/opt"),
		_rw_msg(`ephemeralContainer "debug"`, "logs", "/logs", "/var/log/airflow/tasks"),
		`volume "sock" mounts host path "/var/run/docker.sock", which is outside the allowed prefixes`,
	} with input as {"pod": _rw_pod}
		with data.airflow.pod.lib.config.user as _rw_config
}

test_read_only_mounts_pass if {
	pod := json.patch(_rw_pod, [
		{"op": "remove", "path": "/spec/ephemeralContainers"},
		{"op": "remove", "path": "/spec/initContainers"},
		{"op": "remove", "path": "/spec/volumes/5"},
		{"op": "replace", "path": "/spec/containers/0/volumeMounts", "value": [
			{"name": "logs", "mountPath": "/logs-ro", "readOnly": true},
			{"name": "logs", "mountPath": "/logs-rw", "subPath": "tasks", "readOnly": true, "recursiveReadOnly": "IfPossible"},
			{"name": "data", "mountPath": "/data", "readOnly": false},
			{"name": "srv", "mountPath": "/srv", "readOnly": true},
		]},
	])
	deny_host_path.deny == set() with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _rw_config
}

# Entries grant: a path under a read-write entry may be mounted read-write
# even when a wider read-only entry covers it too (PodSecurityPolicy's
# allowedHostPaths rule).
test_any_read_write_entry_grants_read_write if {
	config := {"policies": {"deny_host_path": {"params": {"allowed_prefixes": [
		"/var/log",
		{"path": "/var/log/airflow/", "read_only": false},
	]}}}}
	pod := json.patch(fx.worker_pod, [
		{"op": "add", "path": "/spec/volumes", "value": [
			{"name": "tasks", "hostPath": {"path": "/var/log/airflow/tasks"}},
			{"name": "syslog", "hostPath": {"path": "/var/log/syslog"}},
		]},
		{"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [
			{"name": "tasks", "mountPath": "/tasks"},
			{"name": "syslog", "mountPath": "/syslog"},
		]},
	])
	deny_host_path.deny == {_rw_msg(`container "base"`, "syslog", "/syslog", "/var/log/syslog")} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}

# What the API server refuses must not make the query fail or a mount pass:
# two volumes of one name, a mount without mountPath.
test_malformed_pods_are_still_judged if {
	config := {"policies": {"deny_host_path": {"params": {"allowed_prefixes": ["/var/log"]}}}}
	pod := json.patch(fx.worker_pod, [
		{"op": "add", "path": "/spec/volumes", "value": [
			{"name": "logs", "hostPath": {"path": "/var/log/a"}},
			{"name": "logs", "hostPath": {"path": "/var/log/b"}},
		]},
		{"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [{"name": "logs"}]},
	])
	deny_host_path.deny == {
		_rw_msg(`container "base"`, "logs", "", "/var/log/a"),
		_rw_msg(`container "base"`, "logs", "", "/var/log/b"),
	} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}
