package airflow.pod.policies.pod_security

# The baseline checks (check_*.go of k8s.io/pod-security-admission v0.34.2).
# Each failing check adds failed.<id>: its reason and detail as Kubernetes
# words them. policy.rego picks the checks of each level and version.

import data.airflow.pod.lib.k8s

_apparmor_types := {"RuntimeDefault", "Localhost"}

_apparmor_prefix := "container.apparmor.security.beta.kubernetes.io/"

# _profile_type(x, key): the type of the profile x sets under key ("" when
# the profile names none), undefined when x sets no profile.
_profile_type(x, key) := object.get(profile, "type", "") if {
	profile := x[key]
	profile != null
}

_bad_apparmor_pod := [t | t := _profile_type(_pod_context, "appArmorProfile"); not t in _apparmor_types]

_bad_apparmor[sc] := t if {
	some sc in _contexts
	t := _profile_type(sc, "appArmorProfile")
	not t in _apparmor_types
}

_bad_apparmor_annotations := sort([sprintf("%s=%q", [key, value]) |
	some key, value in k8s.annotations
	startswith(key, _apparmor_prefix)
	not _allowed_apparmor_annotation(value)
])

_allowed_apparmor_annotation("")

_allowed_apparmor_annotation("runtime/default")

_allowed_apparmor_annotation(value) if startswith(value, "localhost/")

failed["app_armor_profile"] := sprintf("%s (%s must not set AppArmor profile type to %s)", [
	_plural(count(values), "forbidden AppArmor profile", "forbidden AppArmor profiles"),
	concat(" and ", setters),
	_quote(values),
]) if {
	values := array.concat(
		sort({t | some t in _bad_apparmor_pod} | {t | some t in _bad_apparmor}),
		_bad_apparmor_annotations,
	)
	count(values) > 0
	annotations := count(_bad_apparmor_annotations)
	setters := array.concat(
		array.concat(
			_pod_if(count(_bad_apparmor_pod) > 0),
			[_named_by(object.keys(_bad_apparmor)) | count(_bad_apparmor) > 0],
		),
		[_plural(annotations, "annotation", "annotations") | annotations > 0],
	)
}

_baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

_bad_capabilities_baseline[sc] := bad if {
	some sc in _contexts
	bad := [cap | some cap in sc.capabilities.add; not cap in _baseline_capabilities]
	count(bad) > 0
}

failed["capabilities_baseline"] := sprintf(
	"non-default capabilities (%s must not include %s in securityContext.capabilities.add)",
	[
		_named_by(object.keys(_bad_capabilities_baseline)),
		_quote(sort({cap | some bad in _bad_capabilities_baseline; some cap in bad})),
	],
) if {
	count(_bad_capabilities_baseline) > 0
}

failed["host_namespaces"] := sprintf("host namespaces (%s)", [concat(", ", found)]) if {
	found := [concat("", [field, "=true"]) | some field in ["hostNetwork", "hostPID", "hostIPC"]; _spec[field] == true]
	count(found) > 0
}

_volumes := _list("volumes")

failed["host_path_volumes"] := sprintf(
	"hostPath volumes (%s %s)",
	[_plural(count(names), "volume", "volumes"), _quote(names)],
) if {
	names := [v.name | some v in _volumes; object.get(v, "hostPath", null) != null]
	count(names) > 0
}

_host_ports := [[c.name, ports] |
	some c in containers
	ports := [format_int(port, 10) | some p in c.ports; port := object.get(p, "hostPort", 0); not port in {0, null}]
	count(ports) > 0
]

failed["host_ports"] := sprintf("hostPort (%s %s %s %s)", [
	_named(names),
	_plural(count(names), "uses", "use"),
	_plural(count(ports), "hostPort", "hostPorts"),
	concat(", ", ports),
]) if {
	count(_host_ports) > 0
	names := [n | some [n, _] in _host_ports]
	ports := sort({p | some [_, found] in _host_ports; some p in found})
}

_probes := {"livenessProbe", "readinessProbe", "startupProbe"}

_hooks := {"postStart", "preStop"}

_host_actions := {"httpGet", "tcpSocket"}

_probe_hosts := array.concat(
	[[c.name, host] |
		some c in containers
		some key, probe in c
		key in _probes
		host := _action_host(probe)
	],
	[[c.name, host] |
		some c in containers
		some hook, handler in c.lifecycle
		hook in _hooks
		host := _action_host(handler)
	],
)

# _action_host(handler): each host an httpGet or tcpSocket action names.
_action_host(handler) := host if {
	some kind, action in handler
	kind in _host_actions
	host := action.host
	not host in {"", null}
}

failed["host_probes_and_host_lifecycle"] := sprintf("probe or lifecycle host (%s %s %s %s)", [
	_named(names),
	_plural(count(names), "uses", "use"),
	_plural(count(hosts), "probe or lifecycle host", "probe or lifecycle hosts"),
	_quote(hosts),
]) if {
	count(_probe_hosts) > 0
	names := sort({n | some [n, _] in _probe_hosts})
	hosts := sort({h | some [_, h] in _probe_hosts})
}

_privileged contains sc if {
	some sc in _contexts
	sc.privileged == true
}

failed["privileged"] := sprintf(
	"privileged (%s must not set securityContext.privileged=true)",
	[_named_by(_privileged)],
) if {
	count(_privileged) > 0
}

_proc_mounts[sc] := mount if {
	some sc in _contexts
	mount := sc.procMount
	not mount in {"Default", null}
}

failed["proc_mount"] := sprintf("procMount (%s must not set securityContext.procMount to %s)", [
	_named_by(object.keys(_proc_mounts)),
	_quote(sort({m | some m in _proc_mounts})),
]) if {
	count(_proc_mounts) > 0
}

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

_bad_selinux[sc] := problems if {
	some sc in _contexts
	problems := _selinux_problems(sc.seLinuxOptions)
}

failed["se_linux_options"] := sprintf("seLinuxOptions (%s set forbidden securityContext.seLinuxOptions: %s)", [
	_setters(_pod_if(count(_bad_selinux_pod) > 0), _names(object.keys(_bad_selinux))),
	concat("; ", found),
]) if {
	problems := array.concat(_bad_selinux_pod, [p | some p in _bad_selinux])
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

_pod_seccomp_valid if _seccomp(_pod_context) in _seccomp_types

_bad_seccomp_pod := [t | t := _seccomp(_pod_context); not t in _seccomp_types]

_seccomp_explicit[sc] := t if {
	some sc in _contexts
	t := _seccomp(sc)
	not t in _seccomp_types
}

_seccomp_explicit_detail := sprintf("seccompProfile (%s must not set securityContext.seccompProfile.type to %s)", [
	_setters(_pod_if(count(_bad_seccomp_pod) > 0), _names(object.keys(_seccomp_explicit))),
	_quote(sort({t | some t in _bad_seccomp_pod} | {t | some t in _seccomp_explicit})),
]) if {
	count(_bad_seccomp_pod) + count(_seccomp_explicit) > 0
}

failed["seccomp_profile_baseline"] := msg if {
	minor >= 19

	# regal ignore:pointless-reassignment
	msg := _seccomp_explicit_detail # bound in the body: undefined means "passes", not "no value"
}

# Before 1.19: the alpha annotations.
failed["seccomp_profile_baseline"] := sprintf("seccompProfile (forbidden %s %s)", [
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
	[0, {
		"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
		"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
	}],
	[27, {"net.ipv4.ip_local_reserved_ports"}],
	[29, {
		"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
		"net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
	}],
	[32, {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}],
]

_safe_sysctls := union({names | some [since, names] in _sysctls_by_minor; since <= minor})

failed["sysctls"] := sprintf("forbidden sysctls (%s)", [concat(", ", names)]) if {
	names := [s.name | some s in _pod_context.sysctls; not s.name in _safe_sysctls]
	count(names) > 0
}

failed["windows_host_process"] := sprintf(
	"hostProcess (%s must not set securityContext.windowsOptions.hostProcess=true)",
	[_setters(pod, names)],
) if {
	pod := _pod_if(object.get(_pod_context, ["windowsOptions", "hostProcess"], false) == true)
	names := _names({sc | some sc in _contexts; sc.windowsOptions.hostProcess == true})
	count(pod) + count(names) > 0
}
