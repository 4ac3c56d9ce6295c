package airflow.pod.policies.deny_host_namespaces_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.deny_host_namespaces

_host := json.patch(fx.worker_pod, [
	{"op": "add", "path": "/spec/hostNetwork", "value": true},
	{"op": "add", "path": "/spec/hostPID", "value": true},
	{"op": "add", "path": "/spec/hostIPC", "value": false},
])

test_host_namespaces_are_denied if {
	deny_host_namespaces.deny == {"pod sets hostNetwork: true", "pod sets hostPID: true"} with input as {"pod": _host}
}

test_allowed_fields_pass if {
	deny_host_namespaces.deny == {"pod sets hostPID: true"} with input as {"pod": _host}
		with data.airflow.pod.lib.config.user as fx.params("deny_host_namespaces", {"allowed": ["hostNetwork"]})
}

test_ordinary_pods_pass if {
	deny_host_namespaces.deny == set() with input as {"pod": fx.worker_pod}
}
