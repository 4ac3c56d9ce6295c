package airflow.pod.policies.deny_host_path

# Denies hostPath volumes outside the allowed path prefixes, and writable
# mounts of those under read-only prefixes (every prefix, unless its entry
# says read_only: false). See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.messages

defaults := {
	"enabled": true,
	# each entry: "/var/log/airflow" (mounted read-only) or
	# {"path": "/data", "read_only": false} (read-write allowed)
	"params": {"allowed_prefixes": []},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"allowed_prefixes": "string|object[]"}

params := config.params("deny_host_path")

deny contains msg if {
	some volume in k8s.pod.spec.volumes
	path := volume.hostPath.path
	not allowed(path)
	msg := sprintf(
		"volume %s mounts host path %s, which is outside the allowed prefixes",
		[messages.quote(volume.name), messages.quote(path)],
	)
}

# A writable host mount is a way out (a writable /var/log lets a task plant
# symlinks the kubelet follows as root), so every mount of a volume that only
# read-only prefixes allow must say readOnly: true, in every container kind.
# A non-recursive read-only mount leaves the host's submounts below it
# writable; recursiveReadOnly is the container's to choose (README.md).
deny contains msg if {
	some [name, path] in _read_only_volumes
	some entry in k8s.containers
	some mount in entry.container.volumeMounts
	mount.name == name
	object.get(mount, "readOnly", false) != true
	msg := sprintf(
		"%s mounts volume %s (host path %s) at %s without readOnly: true; its allowed prefix is read-only",
		[entry.label, messages.quote(name), messages.quote(path), messages.quote(object.get(mount, "mountPath", ""))],
	)
}

# [name, path] of each hostPath volume that only read-only prefixes allow (a
# set: two volumes of one name, which the API server refuses, must not make
# the query fail). Most pods have none, and then no container is looked at.
_read_only_volumes contains [volume.name, path] if {
	some volume in k8s.pod.spec.volumes
	path := volume.hostPath.path
	allowed(path)
	not _writable(path)
}

# allowed(path): the path lies under an allowed prefix, component by
# component ("/var/log" allows "/var/log/airflow", not "/var/logs"), and
# has no ".." component.
allowed(path) if {
	not ".." in split(path, "/")
	some [prefix, _] in _prefixes
	_under(path, prefix)
}

# _writable(path): some entry allowing the path allows it read-write. Entries
# grant, as PodSecurityPolicy's allowedHostPaths did: a read-write entry wins
# over a wider read-only one.
_writable(path) if {
	some [prefix, false] in _prefixes
	_under(path, prefix)
}

# [prefix, read_only] per entry: a string is a read-only prefix; an object
# {"path": ..., "read_only": false} a read-write one (read_only absent, or
# anything but false: read-only). Other entries allow nothing.
_prefixes contains [trim_suffix(entry, "/"), true] if {
	some entry in params.allowed_prefixes
	is_string(entry)
}

_prefixes contains [trim_suffix(entry.path, "/"), object.get(entry, "read_only", true) != false] if {
	some entry in params.allowed_prefixes
	is_string(entry.path)
}

_under(path, prefix) if trim_suffix(path, "/") == prefix

_under(path, prefix) if startswith(path, concat("", [prefix, "/"]))
