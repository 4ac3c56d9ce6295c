# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
package airflow.pod.policies.security_context_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.security_context

test_bare_container_gets_every_field if {
	ops := security_context.patch with input as {"pod": fx.worker_pod}
	pod := json.patch(fx.worker_pod, sort(ops))
	pod.spec.containers[0].securityContext == fx.hardened_context
}

test_init_containers_are_hardened_too if {
	ops := security_context.patch with input as {"pod": fx.kpo_pod}
	pod := json.patch(fx.kpo_pod, sort(ops))
	pod.spec.initContainers[0].securityContext == fx.hardened_context
	pod.spec.containers[0].securityContext == fx.hardened_context
}

test_init_containers_can_be_left_out if {
	ops := security_context.patch with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as {"policies": {"security_context": {"params": {"init_containers": false}}}}
	every op in ops {
		startswith(op.path, "/spec/containers/0/")
	}
}

test_present_fields_are_kept if {
	context := {
		"runAsNonRoot": false,
		"capabilities": {"add": ["NET_BIND_SERVICE"]},
		"seccompProfile": {"type": "Localhost"},
	}
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/containers/0/securityContext", "value": context}])
	ops := security_context.patch with input as {"pod": pod}
	json.patch(pod, sort(ops)).spec.containers[0].securityContext == {
		"runAsNonRoot": false,
		"allowPrivilegeEscalation": false,
		"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
		"seccompProfile": {"type": "Localhost"},
	}
}

test_fields_the_pod_sets_are_inherited_not_repeated if {
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/securityContext", "value": fx.pod_context}])
	ops := security_context.patch with input as {"pod": pod}
	json.patch(pod, sort(ops)).spec.containers[0].securityContext == {
		"allowPrivilegeEscalation": false,
		"capabilities": {"drop": ["ALL"]},
	}
}

test_root_containers_get_no_run_as_non_root if {
	pod := fx.put(fx.worker_pod, "/spec/containers/0/securityContext", {"runAsUser": 0})
	ops := security_context.patch with input as {"pod": pod}
	not "runAsNonRoot" in object.keys(json.patch(pod, sort(ops)).spec.containers[0].securityContext)
}

test_root_pods_get_no_run_as_non_root if {
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/securityContext", "value": {"runAsUser": 0}}])
	ops := security_context.patch with input as {"pod": pod}
	not "runAsNonRoot" in object.keys(json.patch(pod, sort(ops)).spec.containers[0].securityContext)
}

test_privileged_or_sys_admin_containers_keep_privilege_escalation if {
	contexts := [
		{"privileged": true},
		{"capabilities": {"add": ["CAP_SYS_ADMIN"]}},
		{"capabilities": {"add": ["sys_admin"]}},
	]
	every context in contexts {
		pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/containers/0/securityContext", "value": context}])
		ops := security_context.patch with input as {"pod": pod}
		not "allowPrivilegeEscalation" in object.keys(json.patch(pod, sort(ops)).spec.containers[0].securityContext)
	}
}

test_a_hardened_pod_is_left_alone if {
	security_context.patch == set() with input as {"pod": fx.hardened_pod}
}

test_configured_values_and_nulls if {
	delta := fx.params("security_context", {"values": {"readOnlyRootFilesystem": true, "seccompProfile": null}})
	ops := security_context.patch with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as delta
	json.patch(fx.worker_pod, sort(ops)).spec.containers[0].securityContext == {
		"runAsNonRoot": true,
		"allowPrivilegeEscalation": false,
		"capabilities": {"drop": ["ALL"]},
		"readOnlyRootFilesystem": true,
	}
}

test_windows_containers_get_only_what_windows_accepts if {
	pod := fx.put(fx.kpo_pod, "/spec/os", {"name": "windows"})
	ops := security_context.patch with input as {"pod": pod}
	patched := json.patch(pod, sort(ops))
	patched.spec.containers[0].securityContext == {"runAsNonRoot": true}
	patched.spec.initContainers[0].securityContext == {"runAsNonRoot": true}
}

test_windows_containers_get_no_configured_linux_fields if {
	delta := fx.params("security_context", {"values": {"readOnlyRootFilesystem": true, "runAsUser": 1000}})
	pod := fx.put(fx.worker_pod, "/spec/os", {"name": "windows"})
	ops := security_context.patch with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as delta
	json.patch(pod, sort(ops)).spec.containers[0].securityContext == {"runAsNonRoot": true}
}

test_existing_capabilities_of_a_windows_container_get_no_drop if {
	pod := fx.put(
		fx.put(fx.worker_pod, "/spec/os", {"name": "windows"}),
		"/spec/containers/0/securityContext", {"capabilities": {}},
	)
	ops := security_context.patch with input as {"pod": pod}
	json.patch(pod, sort(ops)).spec.containers[0].securityContext == {"capabilities": {}, "runAsNonRoot": true}
}

# The annotation values the API server holds against a RuntimeDefault field.
_contradicting := ["unconfined", "localhost/profiles/audit.json"]

test_no_seccomp_profile_against_the_container_annotation if {
	every value in _contradicting {
		pod := fx.put(fx.worker_pod, "/metadata/annotations", {"container.seccomp.security.alpha.kubernetes.io/base": value})
		ops := security_context.patch with input as {"pod": pod}
		context := json.patch(pod, sort(ops)).spec.containers[0].securityContext
		not "seccompProfile" in object.keys(context)
		context.allowPrivilegeEscalation == false
	}
}

test_no_seccomp_profile_against_the_pod_annotation if {
	every value in _contradicting {
		pod := fx.put(fx.kpo_pod, "/metadata/annotations", {"seccomp.security.alpha.kubernetes.io/pod": value})
		ops := security_context.patch with input as {"pod": pod}
		patched := json.patch(pod, sort(ops))
		not "seccompProfile" in object.keys(patched.spec.containers[0].securityContext)
		not "seccompProfile" in object.keys(patched.spec.initContainers[0].securityContext)
	}
}

test_a_matching_annotation_gets_the_profile if {
	annotations := {
		"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
		"container.seccomp.security.alpha.kubernetes.io/base": "runtime/default",
		"container.seccomp.security.alpha.kubernetes.io/fetch-data": "docker/default",
	}
	pod := fx.put(fx.kpo_pod, "/metadata/annotations", annotations)
	ops := security_context.patch with input as {"pod": pod}
	patched := json.patch(pod, sort(ops))
	patched.spec.containers[0].securityContext == fx.hardened_context
	patched.spec.initContainers[0].securityContext == fx.hardened_context
}
