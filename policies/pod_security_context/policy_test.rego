# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
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

test_windows_pods_get_no_linux_only_fields if {
	delta := fx.params("pod_security_context", {"values": {"fsGroup": 0, "runAsUser": 50000}})
	pod := fx.put(fx.worker_pod, "/spec/os", {"name": "windows"})
	ops := pod_security_context.patch with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as delta
	json.patch(pod, sort(ops)).spec.securityContext == {"runAsNonRoot": true}
}

test_no_seccomp_profile_against_the_pod_annotation if {
	every value in ["unconfined", "localhost/profiles/audit.json"] {
		pod := fx.put(fx.worker_pod, "/metadata/annotations", {"seccomp.security.alpha.kubernetes.io/pod": value})
		ops := pod_security_context.patch with input as {"pod": pod}
		json.patch(pod, sort(ops)).spec.securityContext == {"runAsNonRoot": true}
	}
}

test_a_matching_pod_annotation_gets_the_profile if {
	pod := fx.put(fx.worker_pod, "/metadata/annotations", {"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"})
	ops := pod_security_context.patch with input as {"pod": pod}
	json.patch(pod, sort(ops)).spec.securityContext == fx.pod_context
}

test_no_pod_seccomp_profile_against_a_container_annotation if {
	annotations := {"container.seccomp.security.alpha.kubernetes.io/fetch-data": "unconfined"}
	pod := fx.put(fx.kpo_pod, "/metadata/annotations", annotations)
	ops := pod_security_context.patch with input as {"pod": pod}
	json.patch(pod, sort(ops)).spec.securityContext == {"runAsNonRoot": true}
}

test_a_contradicting_pod_annotation_counts_even_when_every_container_has_its_own if {
	annotations := {
		"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
		"container.seccomp.security.alpha.kubernetes.io/base": "runtime/default",
	}
	pod := fx.put(fx.worker_pod, "/metadata/annotations", annotations)
	ops := pod_security_context.patch with input as {"pod": pod}
	json.patch(pod, sort(ops)).spec.securityContext == {"runAsNonRoot": true}
}
