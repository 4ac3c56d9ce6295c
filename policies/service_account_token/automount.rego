package airflow.pod.policies.service_account_token

# The ServiceAccount admission plugin of the kube-apiserver runs before
# admission webhooks: a pod whose token is not turned off reaches the webhook
# (policies/lib/admission.rego) with a projected volume named
# "kube-api-access-" and five characters (TokenVolumeSource() in
# plugin/pkg/admission/serviceaccount/admission.go, v1.34), mounted read-only
# at /var/run/secrets/kubernetes.io/serviceaccount in every container that
# mounts nothing there. That volume is what automountServiceAccountToken: true
# means, not a token the pod author projected. It is recognised exactly - the
# plugin's volume (the first whose name has the prefix), the plugin's shape,
# at most the plugin's one mount per container - and then:
#   - not judged as a projected token while the pod's token is on;
#   - removed, with its mounts, where this policy turns the token off.
# The hook applies the same rules; there such a volume can only be the pod
# author's, and it grants nothing automountServiceAccountToken: true would not.

import data.airflow.pod.lib.k8s

automount_mount_path := "/var/run/secrets/kubernetes.io/serviceaccount"

# The plugin's volume source as the API server serializes it.
automount_source := {
	"defaultMode": 420,
	"sources": [
		{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
		{"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
		{"downwardAPI": {"items": [{
			"path": "namespace",
			"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
		}]}},
	],
}

_volumes := object.get(k8s.pod, ["spec", "volumes"], [])

# The plugin mounts the first volume whose name has its prefix (or adds one).
_first := min({i |
	some i, volume in _volumes
	startswith(volume.name, "kube-api-access-")
})

# automount_volume: {"index", "name"} of the plugin's volume, when the pod has it.
automount_volume := {"index": _first, "name": volume.name} if {
	volume := _volumes[_first]
	object.keys(volume) == {"name", "projected"}
	volume.projected == automount_source
	every entry in k8s.containers {
		_plugin_mounts(entry.container, volume.name)
	}
}

# At most one mount of the volume, exactly the plugin's.
_plugin_mounts(container, name) if {
	mounts := [mount | some mount in object.get(container, "volumeMounts", []); mount.name == name]
	count(mounts) < 2
	every mount in mounts {
		mount == {"name": name, "readOnly": true, "mountPath": automount_mount_path}
	}
}

# automount_removals: the operations removing the volume and its mounts; one
# per array, so their order does not matter.
automount_removals contains {"op": "remove", "path": path} if {
	path := concat("", ["/spec/volumes/", format_int(automount_volume.index, 10)])
}

automount_removals contains op if {
	some entry in k8s.containers
	some j, mount in object.get(entry.container, "volumeMounts", [])
	mount.name == automount_volume.name
	op := {"op": "remove", "path": concat("", [entry.path, "/volumeMounts/", format_int(j, 10)])}
}

# automount_kept(i): volume i is the plugin's, and the pod's token is on (the
# pod did not turn it off): it is what the token means, kept, or removed with
# the token where this policy turns it off.
automount_kept(i) if {
	automount_volume.index == i
	object.get(k8s.pod, ["spec", "automountServiceAccountToken"], null) != false
}
