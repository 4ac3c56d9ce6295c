package airflow.pod.policies.deny_privileged_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.deny_privileged

_with_context(pod, path, context) := json.patch(pod, [{"op": "add", "path": path, "value": context}])

test_privileged_containers_are_denied if {
	pod := _with_context(fx.kpo_pod, "/spec/initContainers/0/securityContext", {"privileged": true})
	deny_privileged.deny == {`initContainer "fetch-data" is privileged`} with input as {"pod": pod}
}

test_capabilities_outside_the_allowlist_are_denied if {
	context := {"capabilities": {"add": ["NET_BIND_SERVICE", "CAP_NET_ADMIN", "sys_time", "CHOWN", "cap_kill"]}}
	pod := _with_context(fx.worker_pod, "/spec/containers/0/securityContext", context)
	deny_privileged.deny == {
		`container "base" adds capability "CAP_NET_ADMIN", which is not allowed`,
		`container "base" adds capability "sys_time", which is not allowed`,
	} with input as {"pod": pod}
}

test_the_allowlist_is_configurable if {
	context := {"capabilities": {"add": ["CAP_NET_ADMIN"]}}
	pod := _with_context(fx.worker_pod, "/spec/containers/0/securityContext", context)
	deny_privileged.deny == set() with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as fx.params("deny_privileged", {"allowed_capabilities": ["net_admin"]})
}

test_unprivileged_pods_pass if {
	deny_privileged.deny == set() with input as {"pod": fx.hardened_pod}
}

# Pod strings are clipped and quoted in messages (lib/messages.rego).
test_capabilities_are_clipped_and_quoted if {
	long := concat("", ["X" | some _ in numbers.range(1, 5000)])
	context := {"capabilities": {"add": [long, "A\nB"]}}
	pod := _with_context(fx.worker_pod, "/spec/containers/0/securityContext", context)
	deny := deny_privileged.deny with input as {"pod": pod}
	`container "base" adds capability "A\nB", which is not allowed` in deny
	every msg in deny {
		count(msg) < 400
	}
}

test_the_default_allowlist_is_the_baseline_set if {
	baseline := {
		"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
		"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
	}
	{c | some c in deny_privileged.defaults.params.allowed_capabilities} == baseline
}

test_exempt_images_and_ephemeral_containers if {
	pod := json.patch(fx.kpo_pod, [
		{"op": "add", "path": "/spec/initContainers/0/securityContext", "value": {"privileged": true}},
		{"op": "add", "path": "/spec/ephemeralContainers", "value": [{
			"name": "debug",
			"image": "busybox:1.36",
			"securityContext": {"privileged": true},
		}]},
	])
	config := fx.params("deny_privileged", {"exempt_images": ["quay.io/acme/*"]})
	deny_privileged.deny == {`ephemeralContainer "debug" is privileged`} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}
