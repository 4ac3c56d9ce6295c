package airflow.pod.policies.pod_security_test

import data.airflow.pod.decision
import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.pod_security

# The messages (reason and detail) are Kubernetes' own: the differential test
# (tests/test_pod_security_differential.py) compares them with
# k8s.io/pod-security-admission on thousands of pods. These tests pin each
# control at each level.

# [baseline failures, restricted failures] of a pod.
_levels(pod) := levels if {
	# regal ignore:with-outside-test-context
	levels := [pod_security.violations(1), pod_security.violations(2)] with input as {"pod": pod}
}

# The same at an older policy version.
_at(pod, minor) := levels if {
	# regal ignore:with-outside-test-context
	levels := _levels(pod) with pod_security.minor as minor
}

_base := fx.hardened_pod

_container(pod, context) := fx.put(pod, "/spec/containers/0/securityContext", context)

_hardened := fx.hardened_context

# --- the shipped defaults ----------------------------------------------------

test_a_hardened_pod_meets_restricted if {
	_levels(_base) == [[], []]
	d := decision with input as {"pod": _base, "airflow": fx.ke_airflow}
	d.deny == []
	d.warn == []
}

test_defaults_deny_baseline_and_warn_restricted if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/hostNetwork", "value": true},
		{"op": "replace", "path": "/spec/securityContext/runAsNonRoot", "value": false},
	])
	host := `violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`
	pod_security.deny == [host] with input as {"pod": pod}
	non_root := concat(" ", [
		`would violate PodSecurity "restricted:latest": runAsNonRoot != true (pod must`,
		`not set securityContext.runAsNonRoot=false)`,
	])
	pod_security.warn == [
		`would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true)`,
		non_root,
	] with input as {"pod": pod}
}

test_enforce_restricted_denies_without_repeating_warnings if {
	pod := json.patch(_base, [{"op": "replace", "path": "/spec/securityContext/runAsNonRoot", "value": false}])
	config := fx.params("pod_security", {"enforce": "restricted"})
	expected := concat(" ", [
		`violates PodSecurity "restricted:latest": runAsNonRoot != true (pod must not set`,
		`securityContext.runAsNonRoot=false)`,
	])
	pod_security.deny == [expected] with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
	pod_security.warn == [] with input as {"pod": pod} with data.airflow.pod.lib.config.user as config
}

test_privileged_level_judges_nothing if {
	pod := json.patch(_base, [{"op": "add", "path": "/spec/hostPID", "value": true}])
	config := fx.params("pod_security", {"enforce": "privileged", "warn": "privileged"})
	pod_security.deny == [] with input as {"pod": pod} with data.airflow.pod.lib.config.user as config
	pod_security.warn == [] with input as {"pod": pod} with data.airflow.pod.lib.config.user as config
}

# --- baseline controls (fail both levels) ------------------------------------

test_host_process if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/securityContext/windowsOptions", "value": {"hostProcess": true}},
		{"op": "add", "path": "/spec/containers/0/securityContext/windowsOptions", "value": {"hostProcess": true}},
	])
	msg := `hostProcess (pod and container "base" must not set securityContext.windowsOptions.hostProcess=true)`
	_levels(pod) == [[msg], [msg]]
}

test_host_namespaces if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/hostIPC", "value": true},
		{"op": "add", "path": "/spec/hostPID", "value": true},
		{"op": "add", "path": "/spec/hostNetwork", "value": false},
	])
	msg := "host namespaces (hostPID=true, hostIPC=true)"
	_levels(pod) == [[msg], [msg]]
}

test_privileged if {
	pod := _container(_base, object.union(_hardened, {"privileged": true}))
	msg := `privileged (container "base" must not set securityContext.privileged=true)`
	_levels(pod) == [[msg], [msg]]
}

test_capabilities_beyond_the_baseline_set if {
	context := object.union(_hardened, {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "CHOWN", "chown"]}})
	pod := _container(_base, context)
	expected := concat(" ", [
		`non-default capabilities (container "base" must not include "NET_ADMIN", "chown"`,
		`in securityContext.capabilities.add)`,
	])
	expected2 := concat(" ", [
		`unrestricted capabilities (container "base" must not include "CHOWN",`,
		`"NET_ADMIN", "chown" in securityContext.capabilities.add)`,
	])
	_levels(pod) == [
		[expected],
		[expected2],
	]
}

test_host_path_volumes if {
	volumes := [{"name": "logs", "hostPath": {"path": "/var/log"}}, {"name": "tmp", "emptyDir": {}}]
	pod := fx.put(_base, "/spec/volumes", volumes)
	_levels(pod) == [
		[`hostPath volumes (volume "logs")`],
		[`restricted volume types (volume "logs" uses restricted volume type "hostPath")`],
	]
}

test_host_ports if {
	ports := [
		{"containerPort": 80, "hostPort": 8080},
		{"containerPort": 22, "hostPort": 22},
		{"containerPort": 9, "hostPort": 0},
	]
	pod := fx.put(_base, "/spec/containers/0/ports", ports)
	msg := `hostPort (container "base" uses hostPorts 22, 8080)`
	_levels(pod) == [[msg], [msg]]
}

test_apparmor_fields_and_annotations if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/securityContext/appArmorProfile", "value": {"type": "Unconfined"}},
		{
			"op": "add",
			"path": "/spec/containers/0/securityContext/appArmorProfile",
			"value": {"type": "Localhost", "localhostProfile": "p"},
		},
		{
			"op": "add",
			"path": "/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1base",
			"value": "localhost",
		},
		{
			"op": "add",
			"path": "/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1other",
			"value": "localhost/p",
		},
	])
	msg := concat(" ", [
		`forbidden AppArmor profiles (pod and annotation must not set AppArmor profile`,
		`type to "Unconfined",`,
		`"container.apparmor.security.beta.kubernetes.io/base="localhost"")`,
	])
	_levels(pod) == [[msg], [msg]]
}

test_apparmor_container_field if {
	pod := fx.put(_base, "/spec/containers/0/securityContext/appArmorProfile", {})
	msg := `forbidden AppArmor profile (container "base" must not set AppArmor profile type to "")`
	_levels(pod) == [[msg], [msg]]
}

test_selinux if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/securityContext/seLinuxOptions", "value": {"type": "spc_t", "level": "s0:c1,c2"}},
		{
			"op": "add",
			"path": "/spec/containers/0/securityContext/seLinuxOptions",
			"value": {"user": "system_u", "role": "r"},
		},
	])
	msg := concat(" ", [
		`seLinuxOptions (pod and container "base" set forbidden`,
		`securityContext.seLinuxOptions: type "spc_t"; user may not be set; role may not`,
		`be set)`,
	])
	_levels(pod) == [[msg], [msg]]
}

test_selinux_container_engine_type_since_1_31 if {
	pod := fx.put(_base, "/spec/securityContext/seLinuxOptions", {"type": "container_engine_t"})
	_levels(pod) == [[], []]
	msg := `seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type "container_engine_t")`
	_at(pod, 30) == [[msg], [msg]]
}

test_proc_mount if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/containers/0/securityContext/procMount", "value": "Unmasked"},
		{
			"op": "add",
			"path": "/spec/initContainers",
			"value": [{
				"name": "init",
				"image": "busybox:1",
				"securityContext": object.union(_hardened, {"procMount": "Default"}),
			}],
		},
	])
	msg := `procMount (container "base" must not set securityContext.procMount to "Unmasked")`
	_levels(pod) == [[msg], [msg]]
}

test_seccomp_fields if {
	pod := json.patch(_base, [
		{"op": "replace", "path": "/spec/securityContext/seccompProfile", "value": {"type": "Unconfined"}},
		{
			"op": "replace",
			"path": "/spec/containers/0/securityContext/seccompProfile",
			"value": {"type": "Localhost", "localhostProfile": "p.json"},
		},
	])
	msg := `seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")`
	_levels(pod) == [[msg], [msg]]
}

test_seccomp_annotations_only_before_1_19 if {
	pod := fx.put(_base, "/metadata/annotations/seccomp.security.alpha.kubernetes.io~1pod", "unconfined")
	_levels(pod) == [[], []]
	msg := `seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")`
	_at(pod, 18) == [[msg], [msg]]
}

test_sysctls if {
	sysctls := [
		{"name": "net.ipv4.tcp_rmem", "value": "1"},
		{"name": "kernel.msgmax", "value": "1"},
		{"name": "net/ipv4/ip_local_port_range", "value": "1"},
	]
	pod := fx.put(_base, "/spec/securityContext/sysctls", sysctls)
	msg := "forbidden sysctls (kernel.msgmax, net/ipv4/ip_local_port_range)"
	_levels(pod) == [[msg], [msg]]
	older := "forbidden sysctls (net.ipv4.tcp_rmem, kernel.msgmax, net/ipv4/ip_local_port_range)"
	_at(pod, 31) == [[older], [older]]
}

test_probe_and_lifecycle_hosts_since_1_34 if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/containers/0/livenessProbe", "value": {"httpGet": {"host": "10.0.0.1", "port": 80}}},
		{"op": "add", "path": "/spec/containers/0/readinessProbe", "value": {"tcpSocket": {"host": "", "port": 80}}},
		{
			"op": "add",
			"path": "/spec/containers/0/lifecycle",
			"value": {"preStop": {"tcpSocket": {"host": "node", "port": 80}}},
		},
	])
	msg := `probe or lifecycle host (container "base" uses probe or lifecycle hosts "10.0.0.1", "node")`
	_levels(pod) == [[msg], [msg]]
	_at(pod, 33) == [[], []]
}

# --- restricted controls (fail restricted only) ------------------------------

test_restricted_volume_types if {
	volumes := [{"name": "a", "nfs": {}}, {"name": "b", "image": {"reference": "x"}}, {"name": "c"}]
	pod := fx.put(_base, "/spec/volumes", volumes)
	_levels(pod) == [[], [`restricted volume types (volumes "a", "c" use restricted volume types "nfs", "unknown")`]]
}

test_privilege_escalation if {
	pod := _container(_base, object.union(_hardened, {"allowPrivilegeEscalation": true}))
	expected := concat(" ", [
		`allowPrivilegeEscalation != false (container "base" must set`,
		`securityContext.allowPrivilegeEscalation=false)`,
	])
	_levels(pod) == [[], [expected]]
}

test_run_as_non_root if {
	explicit := _container(_base, object.union(_hardened, {"runAsNonRoot": false}))
	_levels(explicit) == [[], [`runAsNonRoot != true (container "base" must not set securityContext.runAsNonRoot=false)`]]
	implicit := json.patch(_base, [
		{"op": "remove", "path": "/spec/securityContext/runAsNonRoot"},
		{"op": "remove", "path": "/spec/containers/0/securityContext/runAsNonRoot"},
	])
	expected := concat(" ", [
		`runAsNonRoot != true (pod or container "base" must set`,
		`securityContext.runAsNonRoot=true)`,
	])
	_levels(implicit) == [[], [expected]]
}

test_run_as_user if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/securityContext/runAsUser", "value": 0},
		{"op": "add", "path": "/spec/containers/0/securityContext/runAsUser", "value": 1000},
	])
	_levels(pod) == [[], [`runAsUser=0 (pod must not set runAsUser=0)`]]
	_at(pod, 22) == [[], []]
}

test_seccomp_required if {
	pod := json.patch(_base, [
		{"op": "remove", "path": "/spec/securityContext/seccompProfile"},
		{"op": "remove", "path": "/spec/containers/0/securityContext/seccompProfile"},
	])
	expected := concat(" ", [
		`seccompProfile (pod or container "base" must set`,
		`securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`,
	])
	_levels(pod) == [[], [expected]]
}

test_capabilities_drop_all if {
	pod := _container(_base, object.union(_hardened, {"capabilities": {"drop": ["all"], "add": ["NET_BIND_SERVICE"]}}))
	expected := concat(" ", [
		`unrestricted capabilities (container "base" must set`,
		`securityContext.capabilities.drop=["ALL"])`,
	])
	_levels(pod) == [[], [expected]]
	_at(pod, 21) == [[], []]
}

# --- every kind of container, Windows, exemptions ----------------------------

test_init_and_ephemeral_containers_are_judged_in_kubernetes_order if {
	pod := json.patch(_base, [
		{
			"op": "add",
			"path": "/spec/initContainers",
			"value": [{"name": "init", "image": "busybox:1", "securityContext": {"privileged": true}}],
		},
		{
			"op": "add",
			"path": "/spec/ephemeralContainers",
			"value": [{"name": "debug", "image": "busybox:1", "securityContext": {"privileged": true}}],
		},
	])
	msg := `privileged (containers "init", "debug" must not set securityContext.privileged=true)`
	[baseline, restricted] := _levels(pod)
	baseline == [msg]
	restricted[0] == msg
	count(restricted) == 3
}

test_windows_pods_skip_the_linux_only_restricted_checks if {
	pod := json.patch(fx.worker_pod, [
		{"op": "add", "path": "/spec/os", "value": {"name": "windows"}},
		{"op": "add", "path": "/spec/securityContext", "value": {"runAsNonRoot": true}},
		{"op": "add", "path": "/spec/containers/0/securityContext", "value": {"capabilities": {"add": ["SYS_ADMIN"]}}},
	])
	expected := concat(" ", [
		`non-default capabilities (container "base" must not include "SYS_ADMIN" in`,
		`securityContext.capabilities.add)`,
	])
	_levels(pod) == [[expected], []]
	[_, older] := _at(pod, 24)
	count(older) == 3
}

test_exempt_images_skip_their_containers if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/containers/0/securityContext/privileged", "value": true},
		{"op": "add", "path": "/spec/hostPID", "value": true},
	])
	config := fx.params("pod_security", {"exempt_images": ["docker.io/*", "apache/airflow:*"]})
	expected := concat(" ", [`violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`])
	pod_security.deny == [expected] with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}

# --- versions and configuration ----------------------------------------------

test_versions if {
	pod_security.minor == 34
	pod_security.minor == 30 with data.airflow.pod.lib.config.user as fx.params("pod_security", {"version": "v1.30"})
	pod_security.minor == 34 with data.airflow.pod.lib.config.user as fx.params("pod_security", {"version": "v1.99"})
	pod_security.minor == 0 with data.airflow.pod.lib.config.user as fx.params("pod_security", {"version": "v1.0"})
	pod := json.patch(_base, [{"op": "add", "path": "/spec/hostPID", "value": true}])
	expected := concat(" ", [`violates PodSecurity "baseline:v1.30": host namespaces (hostPID=true)`])
	pod_security.deny == [expected] with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as fx.params("pod_security", {"version": "v1.30"})
}

test_invalid_configuration_fails_like_pod_security_admission if {
	config := fx.params("pod_security", {"enforce": "strict", "warn": "loud", "version": "1.30"})
	pod := json.patch(_base, [{"op": "replace", "path": "/spec/securityContext/runAsNonRoot", "value": false}])
	expected := concat(" ", [
		`violates PodSecurity "restricted:latest": runAsNonRoot != true (pod must not set`,
		`securityContext.runAsNonRoot=false)`,
	])
	pod_security.deny == [expected] with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
	pod_security.warn == [
		`invalid enforce level "strict": must be one of privileged, baseline, restricted; enforcing restricted`,
		`invalid version "1.30": must be "latest" or "v1.x"; using latest`,
		`invalid warn level "loud": must be one of privileged, baseline, restricted; not warning`,
	] with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as config
}

test_malformed_spec_parts_count_as_absent if {
	pod := {"metadata": {"name": "p"}, "spec": {"securityContext": null, "containers": "x"}}
	_levels(pod) == [[], []]
}

# --- the fast path (fast.rego) -------------------------------------------------

test_hardened_variants_take_the_fast_path if {
	pod := json.patch(_base, [
		{"op": "add", "path": "/spec/securityContext/runAsUser", "value": 1000},
		{"op": "add", "path": "/spec/securityContext/fsGroup", "value": 1000},
		{"op": "add", "path": "/spec/securityContext/appArmorProfile", "value": {"type": "RuntimeDefault"}},
		{"op": "remove", "path": "/spec/containers/0/securityContext/runAsNonRoot"},
		{"op": "remove", "path": "/spec/containers/0/securityContext/seccompProfile"},
		{"op": "add", "path": "/spec/containers/0/securityContext/runAsUser", "value": 1000},
		{"op": "add", "path": "/spec/containers/0/securityContext/privileged", "value": false},
		{"op": "add", "path": "/spec/containers/0/securityContext/procMount", "value": "Default"},
		{"op": "add", "path": "/spec/containers/0/securityContext/readOnlyRootFilesystem", "value": true},
		{
			"op": "add",
			"path": "/spec/containers/0/securityContext/appArmorProfile",
			"value": {"type": "Localhost", "localhostProfile": "p"},
		},
		{"op": "add", "path": "/spec/containers/0/securityContext/capabilities/add", "value": ["NET_BIND_SERVICE"]},
		{
			"op": "add",
			"path": "/spec/initContainers",
			"value": [{"name": "init", "image": "busybox:1", "securityContext": _hardened}],
		},
	])
	pod_security._clean with input as {"pod": pod}
	_levels(pod) == [[], []]
}

test_the_hardened_contexts_are_good_without_help_from_the_pod if {
	pod := {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
	every sc in pod_security._hardened_contexts {
		pod_security._good_context(sc) with input as {"pod": pod}
	}
}

test_pods_the_fast_path_does_not_know_take_every_check if {
	ports := fx.put(_base, "/spec/containers/0/ports", [{"containerPort": 8080}])
	not pod_security._clean with input as {"pod": ports}
	_levels(ports) == [[], []]
	selinux := fx.put(_base, "/spec/securityContext/seLinuxOptions", {"level": "s0:c1,c2"})
	not pod_security._clean with input as {"pod": selinux}
	_levels(selinux) == [[], []]
	old := _at(_base, 30)
	old == [[], []]
}

# Regression (issue 22, finding 1): the fast path accepted a context without
# capabilities, so restricted's "drop ALL" was never asked for when the
# mutators that add it were off.
test_no_capabilities_is_judged_with_the_mutators_off if {
	pod := _container(_base, object.remove(_hardened, ["capabilities"]))
	not pod_security._clean with input as {"pod": pod}
	missing := concat(" ", [
		`unrestricted capabilities (container "base" must set`,
		`securityContext.capabilities.drop=["ALL"])`,
	])
	_levels(pod) == [[], [missing]]
	config := {"policies": {
		"security_context": {"enabled": false},
		"pod_security_context": {"enabled": false},
		"pod_security": {"params": {"enforce": "restricted"}},
	}}
	d := decision with input as {"pod": pod, "airflow": fx.ke_airflow}
		with data.airflow.pod.lib.config.user as config
	fx.msgs_of(d.deny, "pod_security") == [concat("", [`violates PodSecurity "restricted:latest": `, missing])]
}
