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
