# Folders are named policies/<name>/, not after the package path (policies/README.md, "Checks").
# regal ignore:directory-package-mismatch
package airflow.pod.policies.pod_security

# The Pod Security Standards, check for check as k8s.io/pod-security-admission
# v0.34.2 implements them (policy/check_*.go): every check's ID, level,
# versions, overrides and its ForbiddenReason / ForbiddenDetail text. Judged on
# the patched pod; denies what fails `enforce`, warns on what fails `warn`.
# See README.md.
#
# Cost: every check walks the containers (or volumes, or annotations) once;
# the failing checks are computed once and shared by deny and warn.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match

defaults := {
	"enabled": true,
	"params": {
		"enforce": "baseline",
		"warn": "restricted",
		"version": "latest",
		"exempt_images": [],
	},
}

params := config.params("pod_security")

# --- levels and versions ----------------------------------------------------

_ranks := {"privileged": 0, "baseline": 1, "restricted": 2}

# The newest policy version the library defines checks for: "latest" and
# anything newer mean Kubernetes 1.34.
latest_minor := 34

# An unknown enforce level fails closed (restricted), an unknown warn level
# fails open (privileged), as PodSecurity admission treats namespace labels.
_enforce := params.enforce if _ranks[params.enforce]

else := "restricted"

_warn := params.warn if _ranks[params.warn]

else := "privileged"

# The version's minor number, or undefined for a malformed version.
_given_minor := latest_minor if {
	params.version == "latest"
} else := to_number(m) if {
	[[_, m]] := regex.find_all_string_submatch_n(`^v1\.([0-9]|[1-9][0-9]*)$`, params.version, 1)
}

# The version the checks run at (newer than the library: its newest).
minor := min({_given_minor, latest_minor})

default minor := 34

_version := params.version if _given_minor

else := "latest"

# --- the checks: [id, level rank, minimum minor, baseline check it overrides] --

# In PodSecurity's order: baseline IDs sorted, then restricted IDs sorted.
_checks := [
	["appArmorProfile", 1, 0, ""],
	["capabilities_baseline", 1, 0, ""],
	["hostNamespaces", 1, 0, ""],
	["hostPathVolumes", 1, 0, ""],
	["hostPorts", 1, 0, ""],
	["hostProbesAndHostLifecycle", 1, 34, ""],
	["privileged", 1, 0, ""],
	["procMount", 1, 0, ""],
	["seLinuxOptions", 1, 0, ""],
	["seccompProfile_baseline", 1, 0, ""],
	["sysctls", 1, 0, ""],
	["windowsHostProcess", 1, 0, ""],
	["allowPrivilegeEscalation", 2, 8, ""],
	["capabilities_restricted", 2, 22, "capabilities_baseline"],
	["restrictedVolumes", 2, 0, "hostPathVolumes"],
	["runAsNonRoot", 2, 0, ""],
	["runAsUser", 2, 23, ""],
	["seccompProfile_restricted", 2, 19, "seccompProfile_baseline"],
]

_active := [check | some check in _checks; check[2] <= minor]

# Baseline checks a restricted check replaces at the restricted level.
_overridden := {check[3] | some check in _active; check[3] != ""}

# ids(rank): the checks of a level, in order.
ids(rank) := [id |
	some [id, level, _, _] in _active
	level <= rank
	not _skipped(rank, id)
]

_skipped(2, id) if id in _overridden

# violations(rank): "reason (detail)" of each failing check of a level.
violations(rank) := [msg | some id in ids(rank); msg := failed[id]]

deny := [sprintf("violates PodSecurity %q: %s", [_label(_enforce), v]) | some v in violations(_ranks[_enforce])]

# Warnings preview the warn level; when it is the enforce level they would
# repeat the denies (PodSecurity does not warn on what it rejects either).
warn := array.concat(_config_warnings, [sprintf("would violate PodSecurity %q: %s", [_label(_warn), v]) |
	_warn != _enforce
	some v in violations(_ranks[_warn])
])

_label(level) := concat(":", [level, _version])

_config_warnings := [msg | some msg in _config_problems]

_config_problems contains sprintf(`invalid enforce level %s: must be one of privileged, baseline, restricted; enforcing restricted`, [json.marshal(params.enforce)]) if not _ranks[params.enforce]

_config_problems contains sprintf(`invalid warn level %s: must be one of privileged, baseline, restricted; not warning`, [json.marshal(params.warn)]) if not _ranks[params.warn]

_config_problems contains sprintf(`invalid version %s: must be "latest" or "v1.x"; using latest`, [json.marshal(params.version)]) if not _given_minor

# --- what the checks look at ------------------------------------------------

_spec := _object(object.get(k8s.pod, "spec", {}))

_pod_context := _object(object.get(_spec, "securityContext", {}))

_object(x) := x if is_object(x)

else := {}

_list(key) := value if {
	value := _spec[key]
	is_array(value)
} else := []

# Windows pods skip the restricted checks that need Linux-only fields (1.25+).
_windows if _spec.os.name == "windows"

_linux_only_skipped if {
	_windows
	minor >= 25
}

# Containers in PodSecurity's order (init, regular, ephemeral), without those
# whose image an exemption names.
_all_containers := array.concat(
	array.concat(_list("initContainers"), _list("containers")),
	_list("ephemeralContainers"),
)

containers := _all_containers if {
	count(params.exempt_images) == 0
} else := [c | some c in _all_containers; not _exempt(c)]

_exempt(c) if {
	some pattern in params.exempt_images
	match.glob_match(pattern, c.image)
}

# --- message helpers (PodSecurity's pluralize and joinQuote) ----------------

_plural(1, one, _) := one

_plural(n, _, many) := many if n != 1

_quote(items) := concat("", [`"`, concat(`", "`, items), `"`])

# `container "a"` / `containers "a", "b"`
_named(names) := concat(" ", [_plural(count(names), "container", "containers"), _quote(names)])

# "pod", containers, ... joined with " and "
_setters(pod, names) := concat(" and ", array.concat(pod, [_named(names) | count(names) > 0]))

_pod_if(cond) := ["pod"] if cond

else := []

# --- baseline ---------------------------------------------------------------

_apparmor_types := {"RuntimeDefault", "Localhost"}

_apparmor_prefix := "container.apparmor.security.beta.kubernetes.io/"

# _profile_type(x, key): the type of the profile x sets under key ("" when
# the profile names none), undefined when x sets no profile.
_profile_type(x, key) := object.get(profile, "type", "") if {
	profile := x[key]
	profile != null
}

_bad_apparmor_pod := [t | t := _profile_type(_pod_context, "appArmorProfile"); not t in _apparmor_types]

_bad_apparmor := [[c.name, t] |
	some c in containers
	t := _profile_type(c.securityContext, "appArmorProfile")
	not t in _apparmor_types
]

_bad_apparmor_annotations := sort([sprintf("%s=%q", [key, value]) |
	some key, value in k8s.annotations
	startswith(key, _apparmor_prefix)
	not _allowed_apparmor_annotation(value)
])

_allowed_apparmor_annotation("")

_allowed_apparmor_annotation("runtime/default")

_allowed_apparmor_annotation(value) if startswith(value, "localhost/")

failed["appArmorProfile"] := sprintf("%s (%s must not set AppArmor profile type to %s)", [
	_plural(count(values), "forbidden AppArmor profile", "forbidden AppArmor profiles"),
	concat(" and ", setters),
	_quote(values),
]) if {
	values := array.concat(
		sort({t | some t in _bad_apparmor_pod} | {t | some [_, t] in _bad_apparmor}),
		_bad_apparmor_annotations,
	)
	count(values) > 0
	annotations := count(_bad_apparmor_annotations)
	setters := array.concat(
		array.concat(_pod_if(count(_bad_apparmor_pod) > 0), [_named([n | some [n, _] in _bad_apparmor]) | count(_bad_apparmor) > 0]),
		[_plural(annotations, "annotation", "annotations") | annotations > 0],
	)
}

_baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

_bad_capabilities_baseline := [[c.name, bad] |
	some c in containers
	bad := [cap | some cap in c.securityContext.capabilities.add; not cap in _baseline_capabilities]
	count(bad) > 0
]

failed["capabilities_baseline"] := sprintf("non-default capabilities (%s must not include %s in securityContext.capabilities.add)", [
	_named([n | some [n, _] in _bad_capabilities_baseline]),
	_quote(sort({cap | some [_, bad] in _bad_capabilities_baseline; some cap in bad})),
]) if count(_bad_capabilities_baseline) > 0

failed["hostNamespaces"] := sprintf("host namespaces (%s)", [concat(", ", found)]) if {
	found := [concat("", [field, "=true"]) | some field in ["hostNetwork", "hostPID", "hostIPC"]; _spec[field] == true]
	count(found) > 0
}

_volumes := _list("volumes")

failed["hostPathVolumes"] := sprintf("hostPath volumes (%s %s)", [_plural(count(names), "volume", "volumes"), _quote(names)]) if {
	names := [v.name | some v in _volumes; object.get(v, "hostPath", null) != null]
	count(names) > 0
}

_host_ports := [[c.name, ports] |
	some c in containers
	ports := [format_int(port, 10) | some p in c.ports; port := object.get(p, "hostPort", 0); not port in {0, null}]
	count(ports) > 0
]

failed["hostPorts"] := sprintf("hostPort (%s %s %s %s)", [
	_named(names),
	_plural(count(names), "uses", "use"),
	_plural(count(ports), "hostPort", "hostPorts"),
	concat(", ", ports),
]) if {
	count(_host_ports) > 0
	names := [n | some [n, _] in _host_ports]
	ports := sort({p | some [_, found] in _host_ports; some p in found})
}

_probe_hosts := [[c.name, host] |
	some c in containers
	some handler in array.concat(
		[c[probe] | some probe in ["livenessProbe", "readinessProbe", "startupProbe"]],
		[c.lifecycle[hook] | some hook in ["postStart", "preStop"]],
	)
	some kind in ["httpGet", "tcpSocket"]
	host := handler[kind].host
	not host in {"", null}
]

failed["hostProbesAndHostLifecycle"] := sprintf("probe or lifecycle host (%s %s %s %s)", [
	_named(names),
	_plural(count(names), "uses", "use"),
	_plural(count(hosts), "probe or lifecycle host", "probe or lifecycle hosts"),
	_quote(hosts),
]) if {
	count(_probe_hosts) > 0
	names := sort({n | some [n, _] in _probe_hosts})
	hosts := sort({h | some [_, h] in _probe_hosts})
}

failed["privileged"] := sprintf("privileged (%s must not set securityContext.privileged=true)", [_named(names)]) if {
	names := [c.name | some c in containers; c.securityContext.privileged == true]
	count(names) > 0
}

_proc_mounts := [[c.name, mount] |
	some c in containers
	mount := c.securityContext.procMount
	not mount in {"Default", null}
]

failed["procMount"] := sprintf("procMount (%s must not set securityContext.procMount to %s)", [
	_named([n | some [n, _] in _proc_mounts]),
	_quote(sort({m | some [_, m] in _proc_mounts})),
]) if count(_proc_mounts) > 0

_selinux_types := {"", "container_t", "container_init_t", "container_kvm_t"} | {"container_engine_t" | minor >= 31}

# _selinux_problems(options): [bad types, user set, role set] when options are forbidden.
_selinux_problems(options) := [bad_types, user, role] if {
	is_object(options)
	type := object.get(options, "type", "")
	bad_types := [type | not type in _selinux_types]
	user := object.get(options, "user", "") != ""
	role := object.get(options, "role", "") != ""
	true in [count(bad_types) > 0, user, role]
}

_bad_selinux_pod := [p | p := _selinux_problems(_pod_context.seLinuxOptions)]

_bad_selinux := [[c.name, problems] |
	some c in containers
	problems := _selinux_problems(c.securityContext.seLinuxOptions)
]

failed["seLinuxOptions"] := sprintf("seLinuxOptions (%s set forbidden securityContext.seLinuxOptions: %s)", [
	_setters(_pod_if(count(_bad_selinux_pod) > 0), [n | some [n, _] in _bad_selinux]),
	concat("; ", found),
]) if {
	problems := array.concat(_bad_selinux_pod, [p | some [_, p] in _bad_selinux])
	count(problems) > 0
	types := sort({t | some [bad, _, _] in problems; some t in bad})
	found := array.concat(
		[sprintf("%s %s", [_plural(count(types), "type", "types"), _quote(types)]) | count(types) > 0],
		[msg |
			some [i, msg] in [[1, "user may not be set"], [2, "role may not be set"]]
			true in {p[i] | some p in problems}
		],
	)
}

_seccomp_types := {"RuntimeDefault", "Localhost"}

_seccomp(x) := _profile_type(x, "seccompProfile")

_bad_seccomp_pod := [t | t := _seccomp(_pod_context); not t in _seccomp_types]

_seccomp_explicit := [[c.name, t] |
	some c in containers
	t := _seccomp(c.securityContext)
	not t in _seccomp_types
]

_seccomp_explicit_detail := sprintf("seccompProfile (%s must not set securityContext.seccompProfile.type to %s)", [
	_setters(_pod_if(count(_bad_seccomp_pod) > 0), [n | some [n, _] in _seccomp_explicit]),
	_quote(sort({t | some t in _bad_seccomp_pod} | {t | some [_, t] in _seccomp_explicit})),
]) if count(_bad_seccomp_pod) + count(_seccomp_explicit) > 0

failed["seccompProfile_baseline"] := _seccomp_explicit_detail if minor >= 19

# Before 1.19: the alpha annotations.
failed["seccompProfile_baseline"] := sprintf("seccompProfile (forbidden %s %s)", [
	_plural(count(found), "annotation", "annotations"),
	concat(", ", found),
]) if {
	minor < 19
	keys := array.concat(
		["seccomp.security.alpha.kubernetes.io/pod"],
		[concat("", ["container.seccomp.security.alpha.kubernetes.io/", c.name]) | some c in containers],
	)
	found := sort({sprintf("%s=%q", [key, value]) |
		some key in keys
		value := k8s.annotations[key]
		not _allowed_seccomp_annotation(value)
	})
	count(found) > 0
}

_allowed_seccomp_annotation("runtime/default")

_allowed_seccomp_annotation("docker/default")

_allowed_seccomp_annotation(value) if startswith(value, "localhost/")

_sysctls_by_minor := [
	[0, {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}],
	[27, {"net.ipv4.ip_local_reserved_ports"}],
	[29, {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}],
	[32, {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}],
]

_safe_sysctls := union({names | some [since, names] in _sysctls_by_minor; since <= minor})

failed["sysctls"] := sprintf("forbidden sysctls (%s)", [concat(", ", names)]) if {
	names := [s.name | some s in _pod_context.sysctls; not s.name in _safe_sysctls]
	count(names) > 0
}

failed["windowsHostProcess"] := sprintf("hostProcess (%s must not set securityContext.windowsOptions.hostProcess=true)", [_setters(pod, names)]) if {
	pod := _pod_if(object.get(_pod_context, ["windowsOptions", "hostProcess"], false) == true)
	names := [c.name | some c in containers; c.securityContext.windowsOptions.hostProcess == true]
	count(pod) + count(names) > 0
}

# --- restricted -------------------------------------------------------------

failed["allowPrivilegeEscalation"] := sprintf("allowPrivilegeEscalation != false (%s must set securityContext.allowPrivilegeEscalation=false)", [_named(names)]) if {
	not _linux_only_skipped
	names := [c.name | some c in containers; not c.securityContext.allowPrivilegeEscalation == false]
	count(names) > 0
}

failed["capabilities_restricted"] := sprintf("unrestricted capabilities (%s)", [concat("; ", details)]) if {
	not _linux_only_skipped
	missing := [c.name | some c in containers; not "ALL" in object.get(c, ["securityContext", "capabilities", "drop"], [])]
	adding := [[c.name, bad] |
		some c in containers
		bad := [cap | some cap in c.securityContext.capabilities.add; cap != "NET_BIND_SERVICE"]
		count(bad) > 0
	]
	details := array.concat(
		[sprintf(`%s must set securityContext.capabilities.drop=["ALL"]`, [_named(missing)]) | count(missing) > 0],
		[sprintf("%s must not include %s in securityContext.capabilities.add", [
			_named([n | some [n, _] in adding]),
			_quote(sort({cap | some [_, bad] in adding; some cap in bad})),
		]) |
			count(adding) > 0
		],
	)
	count(details) > 0
}

_allowed_volume_sources := {
	"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
	"image", "persistentVolumeClaim", "projected", "secret",
}

# In the order PodSecurity names a volume's type.
_restricted_volume_sources := [
	"hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
	"glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
	"vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
	"scaleIO", "storageos",
]

_restricted_volumes := [[v.name, kind] |
	some v in _volumes
	not _allowed_volume(v)
	kind := array.concat([k | some k in _restricted_volume_sources; object.get(v, k, null) != null], ["unknown"])[0]
]

_allowed_volume(v) if {
	some key, value in v
	key in _allowed_volume_sources
	value != null
}

failed["restrictedVolumes"] := sprintf("restricted volume types (%s %s %s %s %s)", [
	_plural(count(names), "volume", "volumes"),
	_quote(names),
	_plural(count(names), "uses", "use"),
	_plural(count(kinds), "restricted volume type", "restricted volume types"),
	_quote(kinds),
]) if {
	count(_restricted_volumes) > 0
	names := [n | some [n, _] in _restricted_volumes]
	kinds := sort({k | some [_, k] in _restricted_volumes})
}

_pod_non_root := object.get(_pod_context, "runAsNonRoot", null)

failed["runAsNonRoot"] := sprintf("runAsNonRoot != true (%s must not set securityContext.runAsNonRoot=false)", [_setters(pod, explicit)]) if {
	pod := _pod_if(_pod_non_root == false)
	explicit := [c.name | some c in containers; c.securityContext.runAsNonRoot == false]
	count(pod) + count(explicit) > 0
} else := sprintf("runAsNonRoot != true (pod or %s must set securityContext.runAsNonRoot=true)", [_named(implicit)]) if {
	_pod_non_root != true
	implicit := [c.name | some c in containers; object.get(c, ["securityContext", "runAsNonRoot"], null) == null]
	count(implicit) > 0
}

failed["runAsUser"] := sprintf("runAsUser=0 (%s must not set runAsUser=0)", [_setters(pod, names)]) if {
	minor >= 23
	pod := _pod_if(object.get(_pod_context, "runAsUser", null) == 0)
	names := [c.name | some c in containers; c.securityContext.runAsUser == 0]
	count(pod) + count(names) > 0
}

failed["seccompProfile_restricted"] := _seccomp_explicit_detail if {
	not _linux_only_skipped
} else := sprintf(`seccompProfile (pod or %s must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`, [_named(implicit)]) if {
	not _linux_only_skipped
	not _seccomp(_pod_context) in _seccomp_types
	implicit := [c.name | some c in containers; not _seccomp(object.get(c, "securityContext", {}))]
	count(implicit) > 0
}
