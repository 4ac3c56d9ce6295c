package airflow.pod.policies.pod_security_context_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.pod_security_context

test_pod_gets_the_defaults if {
	ops := pod_security_context.patch with input as {"pod": fx.worker_pod}
	json.patch(fx.worker_pod, sort(ops)).spec.securityContext == fx.pod_context
}

test_present_fields_are_kept if {
	pod := fx.put(fx.worker_pod, "/spec/securityContext", {"runAsNonRoot": false, "fsGroup": 0})
	ops := pod_security_context.patch with input as {"pod": pod}
	json.patch(pod, sort(ops)).spec.securityContext == {
		"runAsNonRoot": false,
		"fsGroup": 0,
		"seccompProfile": {"type": "RuntimeDefault"},
	}
}

test_root_pod_or_container_gets_no_run_as_non_root if {
	pods := [
		json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/securityContext", "value": {"runAsUser": 0}}]),
		json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/containers/0/securityContext", "value": {"runAsUser": 0}}]),
	]
	every pod in pods {
		ops := pod_security_context.patch with input as {"pod": pod}
		not "runAsNonRoot" in object.keys(json.patch(pod, sort(ops)).spec.securityContext)
	}
}

test_a_hardened_pod_is_left_alone if {
	pod_security_context.patch == set() with input as {"pod": fx.hardened_pod}
}
