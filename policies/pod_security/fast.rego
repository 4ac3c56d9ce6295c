package airflow.pod.policies.pod_security

# The fast path. Most pods arrive hardened by the library's own mutators: every
# container's securityContext holds allowPrivilegeEscalation: false, drop ALL,
# and runAsNonRoot / seccompProfile come from it or from the pod. _clean
# recognises such a pod with a whitelist — a few lookups per distinct
# securityContext — and implies that no check of any level fails at the
# latest version; anything it does not know (SELinux options, sysctls,
# windowsOptions, another capability, an older version, ...) takes the full
# checks. tests/test_pod_security_differential.py exercises both paths: its
# near-hardened generator starts from pods _clean accepts and removes or
# alters one field a level reads (pod level, each container kind), with the
# mutators off, and asserts both paths are taken often. A change here, or any
# new fast path, needs such a generator aimed at it.

_clean if {
	minor == latest_minor
	not _host_namespace
	not _rare_fields
	count(_restricted_volumes) == 0
	count(_bad_apparmor_annotations) == 0
	every key, value in _pod_context {
		_good_pod_field(key, value)
	}
	every sc in _contexts - _hardened_contexts {
		_good_context(sc)
	}
}

# The securityContext the library's security_context policy writes by
# default: good on its own (it needs nothing from the pod), so a pod whose
# containers all carry it needs no field-by-field look. policy_test.rego
# checks it passes _good_context in a pod without a securityContext.
_hardened_contexts := {{
	"allowPrivilegeEscalation": false,
	"capabilities": {"drop": ["ALL"]},
	"runAsNonRoot": true,
	"seccompProfile": {"type": "RuntimeDefault"},
}}

# Fields no Airflow container usually has; when one has them, the slow path
# judges their host ports and probe hosts.
_rare_fields if {
	some c in containers
	some key, _ in c
	key in {"ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"}
}

_host_namespace if {
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	_spec[field] == true
}

_good_pod_field("runAsNonRoot", true)

_good_pod_field("runAsUser", value) if value != 0

_good_pod_field("seccompProfile", value) if value.type in _seccomp_types

_good_pod_field("appArmorProfile", value) if value.type in _apparmor_types

_good_pod_field(key, _) if key in _harmless_pod_fields

_harmless_pod_fields := {
	"runAsGroup", "fsGroup", "fsGroupChangePolicy",
	"supplementalGroups", "supplementalGroupsPolicy",
}

# Every field a level requires is asked for by name (allowPrivilegeEscalation,
# capabilities.drop, runAsNonRoot, seccompProfile: present here or, for the
# last two, on the pod); `every` below only vets the fields a context has.
_good_context(sc) if {
	sc.allowPrivilegeEscalation == false
	sc.capabilities.drop == ["ALL"]
	_non_root(sc)
	_seccomp_set(sc)
	every key, value in sc {
		_good_field(key, value)
	}
}

_good_field("allowPrivilegeEscalation", false)

_good_field("capabilities", {"drop": ["ALL"]})

_good_field("capabilities", {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})

_good_field("runAsNonRoot", true)

_good_field("runAsUser", value) if value != 0

_good_field("seccompProfile", value) if value.type in _seccomp_types

_good_field("appArmorProfile", value) if value.type in _apparmor_types

_good_field("privileged", false)

_good_field("procMount", "Default")

_good_field(key, _) if key in {"runAsGroup", "readOnlyRootFilesystem"}

_non_root(sc) if sc.runAsNonRoot == true

_non_root(sc) if {
	not _set(sc, "runAsNonRoot")
	_pod_non_root == true
}

_seccomp_set(sc) if _set(sc, "seccompProfile")

_seccomp_set(sc) if {
	not _set(sc, "seccompProfile")
	_pod_seccomp_valid
}
