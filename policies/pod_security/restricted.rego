package airflow.pod.policies.pod_security

# The restricted checks (check_*.go of k8s.io/pod-security-admission
# v0.34.2); see baseline.rego.

failed["allow_privilege_escalation"] := sprintf(
	"allowPrivilegeEscalation != false (%s must set securityContext.allowPrivilegeEscalation=false)",
	[_named(names)],
) if {
	not _linux_only_skipped
	names := _names({sc | some sc in _contexts; not sc.allowPrivilegeEscalation == false})
	count(names) > 0
}

failed["capabilities_restricted"] := sprintf("unrestricted capabilities (%s)", [concat("; ", details)]) if {
	not _linux_only_skipped
	missing := _names({sc | some sc in _contexts; not _drops_all(sc)})
	adding := {sc: bad |
		some sc in _contexts
		bad := [cap | some cap in sc.capabilities.add; cap != "NET_BIND_SERVICE"]
		count(bad) > 0
	}
	details := array.concat(
		[sprintf(`%s must set securityContext.capabilities.drop=["ALL"]`, [_named(missing)]) | count(missing) > 0],
		[sprintf("%s must not include %s in securityContext.capabilities.add", [
			_named_by(object.keys(adding)),
			_quote(sort({cap | some bad in adding; some cap in bad})),
		]) |
			count(adding) > 0
		],
	)
	count(details) > 0
}

_drops_all(sc) if "ALL" in sc.capabilities.drop

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

failed["restricted_volumes"] := sprintf("restricted volume types (%s %s %s %s %s)", [
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

_set(sc, key) if sc[key] != null

failed["run_as_non_root"] := sprintf(
	"runAsNonRoot != true (%s must not set securityContext.runAsNonRoot=false)",
	[_setters(pod, explicit)],
) if {
	pod := _pod_if(_pod_non_root == false)
	explicit := _names({sc | some sc in _contexts; sc.runAsNonRoot == false})
	count(pod) + count(explicit) > 0
} else := sprintf(
	"runAsNonRoot != true (pod or %s must set securityContext.runAsNonRoot=true)",
	[_named(implicit)],
) if {
	_pod_non_root != true
	implicit := _names({sc | some sc in _contexts; not _set(sc, "runAsNonRoot")})
	count(implicit) > 0
}

failed["run_as_user"] := sprintf("runAsUser=0 (%s must not set runAsUser=0)", [_setters(pod, names)]) if {
	minor >= 23
	pod := _pod_if(object.get(_pod_context, "runAsUser", null) == 0)
	names := _names({sc | some sc in _contexts; sc.runAsUser == 0})
	count(pod) + count(names) > 0
}

failed["seccomp_profile_restricted"] := msg if {
	not _linux_only_skipped

	# regal ignore:pointless-reassignment
	msg := _seccomp_explicit_detail # bound in the body, so that the else branch runs when undefined
} else := sprintf(
	`seccompProfile (pod or %s must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`,
	[_named(implicit)],
) if {
	not _linux_only_skipped
	not _pod_seccomp_valid
	implicit := _names({sc | some sc in _contexts; not _seccomp(sc)})
	count(implicit) > 0
}
