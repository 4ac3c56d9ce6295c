package airflow.pod.policies.service_account_token_test

import data.airflow.pod.decision
import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.service_account_token

# The ServiceAccount admission plugin's volume and mount, as kube-apiserver
# v1.34.2 adds them before webhooks (captured from the real server).
_api_volume := {"name": "kube-api-access-n5jlz", "projected": service_account_token.automount_source}

_api_mount := {
	"name": "kube-api-access-n5jlz",
	"readOnly": true,
	"mountPath": service_account_token.automount_mount_path,
}

# fx.worker_pod as the webhook sees it: the volume last, the mount in every container.
_admitted(pod) := json.patch(pod, array.concat(
	[{"op": "add", "path": "/spec/volumes", "value": array.concat(_volumes(pod), [_api_volume])}],
	[{"op": "add", "path": concat("", [entry.path, "/volumeMounts"]), "value": [_api_mount]} |
		some entry in _all_containers(pod)
	],
))

_volumes(pod) := object.get(pod, ["spec", "volumes"], [])

_all_containers(pod) := [{"path": concat("", ["/spec/", field, "/", format_int(i, 10)])} |
	some field in ["containers", "initContainers"]
	some i, _ in object.get(pod, ["spec", field], [])
]

_opt_in := {"airflow-opa-mutation/automount-service-account-token": "true"}

test_automount_volume_goes_with_the_token if {
	pod := _admitted(fx.put(fx.kpo_pod, "/spec/volumes", [{"name": "data", "emptyDir": {}}]))
	service_account_token.automount_volume == {"index": 1, "name": "kube-api-access-n5jlz"} with input as {"pod": pod}
	service_account_token.patch == {
		{"op": "add", "path": "/spec/automountServiceAccountToken", "value": false},
		{"op": "remove", "path": "/spec/volumes/1"},
		{"op": "remove", "path": "/spec/containers/0/volumeMounts/0"},
		{"op": "remove", "path": "/spec/initContainers/0/volumeMounts/0"},
	} with input as {"pod": pod}
	service_account_token.deny == set() with input as {"pod": pod}
}

test_automount_volume_removed_gives_the_hooks_pod if {
	d := decision with input as {"pod": _admitted(fx.worker_pod), "airflow": fx.ke_airflow}
	d.deny == []
	patched := json.patch(_admitted(fx.worker_pod), d.patch)
	patched == json.patch(fx.hardened_pod, [
		{"op": "add", "path": "/spec/volumes", "value": []},
		{"op": "add", "path": "/spec/containers/0/volumeMounts", "value": []},
	])
	again := decision with input as {"pod": patched, "airflow": fx.ke_airflow}
	again == {"patch": [], "deny": [], "warn": []}
}

# Where the configuration lets the pod keep its token (mode annotation with
# the opt-in, mode respect_spec with an explicit true).
test_automount_volume_stays_while_the_token_is_on if {
	annotation := fx.params("service_account_token", {"mode": "annotation"})
	opted := _admitted(fx.put(fx.worker_pod, "/metadata/annotations", _opt_in))
	service_account_token.patch == set() with input as {"pod": opted}
		with data.airflow.pod.lib.config.user as annotation
	service_account_token.deny == set() with input as {"pod": opted}
		with data.airflow.pod.lib.config.user as annotation
	respect := fx.params("service_account_token", {"mode": "respect_spec"})
	explicit := _admitted(fx.put(fx.worker_pod, "/spec/automountServiceAccountToken", true))
	service_account_token.patch == set() with input as {"pod": explicit}
		with data.airflow.pod.lib.config.user as respect
	service_account_token.deny == set() with input as {"pod": explicit}
		with data.airflow.pod.lib.config.user as respect
}

# Under the default mode an explicit true is replaced, and the volume it
# brought goes with it.
test_automount_volume_goes_when_an_explicit_true_is_replaced if {
	explicit := _admitted(fx.put(fx.worker_pod, "/spec/automountServiceAccountToken", true))
	service_account_token.patch == {
		{"op": "replace", "path": "/spec/automountServiceAccountToken", "value": false},
		{"op": "remove", "path": "/spec/volumes/0"},
		{"op": "remove", "path": "/spec/containers/0/volumeMounts/0"},
	} with input as {"pod": explicit}
	service_account_token.deny == set() with input as {"pod": explicit}
}

_projected_msg := concat("", [
	`volume "kube-api-access-n5jlz" projects a service account token, `,
	"which is not allowed (allow_projected_token)",
])

# With the token off the plugin adds nothing: such a volume is the author's.
test_automount_volume_with_the_token_off_is_a_projected_token if {
	pod := _admitted(fx.put(fx.worker_pod, "/spec/automountServiceAccountToken", false))
	service_account_token.deny == {_projected_msg} with input as {"pod": pod}
	service_account_token.patch == set() with input as {"pod": pod}
}

test_automount_volume_is_recognised_exactly if {
	pod := _admitted(fx.put(fx.worker_pod, "/metadata/annotations", _opt_in))
	token := "/spec/volumes/0/projected/sources/0/serviceAccountToken"
	audience := json.patch(pod, [{"op": "add", "path": concat("", [token, "/audience"]), "value": "vault"}])
	mode := json.patch(pod, [{"op": "replace", "path": "/spec/volumes/0/projected/defaultMode", "value": 511}])
	extra := json.patch(pod, [{"op": "add", "path": "/spec/volumes/0/secret", "value": {"secretName": "s"}}])
	mount := "/spec/containers/0/volumeMounts"
	writable := json.patch(pod, [{"op": "replace", "path": concat("", [mount, "/0/readOnly"]), "value": false}])
	elsewhere := json.patch(pod, [{"op": "replace", "path": concat("", [mount, "/0/mountPath"]), "value": "/t"}])
	second := object.union(_api_mount, {"mountPath": "/t"})
	twice := json.patch(pod, [{"op": "add", "path": concat("", [mount, "/-"]), "value": second}])
	every variant in [audience, mode, extra, writable, elsewhere, twice] {
		not service_account_token.automount_volume with input as {"pod": variant}
		service_account_token.deny == {_projected_msg} with input as {"pod": variant}
	}
}

# The plugin takes the first volume with its prefix: a look-alike after it is the author's.
test_automount_volume_is_the_first_with_the_prefix if {
	pod := _admitted(fx.put(fx.worker_pod, "/metadata/annotations", _opt_in))
	look_alike := {"name": "kube-api-access-aaaaa", "emptyDir": {}}
	first := json.patch(pod, [{"op": "add", "path": "/spec/volumes/0", "value": look_alike}])
	not service_account_token.automount_volume with input as {"pod": first}
	service_account_token.deny == {_projected_msg} with input as {"pod": first}
}
