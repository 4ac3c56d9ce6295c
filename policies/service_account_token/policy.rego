package airflow.pod.policies.service_account_token

# Sets spec.automountServiceAccountToken: false unless the pod opts in.
# Opt-in: the annotation named by `opt_in_annotation` set to "true", or any
# explicit spec.automountServiceAccountToken (the pod's own choice is kept).
# Denies what the automount setting cannot stop: a projected volume with a
# serviceAccountToken source (unless `allow_projected_token`), and service
# accounts outside `service_accounts`. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages
import data.airflow.pod.lib.ops

defaults := {
	"enabled": true,
	"params": {
		"opt_in_annotation": "airflow-opa-mutation/automount-service-account-token",
		"allow_projected_token": false,
		# globs on the service account the pod runs as
		"service_accounts": ["*"],
	},
}

params := config.params("service_account_token")

opted_in if k8s.annotations[params.opt_in_annotation] == "true"

patch contains op if {
	not opted_in
	some op in ops.add_if_absent(k8s.pod, "", ["spec", "automountServiceAccountToken"], false)
}

# The API server's own token volume goes with the token (automount.rego).
patch contains op if {
	not opted_in
	object.get(k8s.pod, ["spec", "automountServiceAccountToken"], null) == null
	some op in automount_removals
}

# A token projected into a volume is mounted whatever automountServiceAccountToken says.
deny contains msg if {
	params.allow_projected_token != true
	some i, volume in object.get(k8s.pod, ["spec", "volumes"], [])
	not automount_kept(i)
	some source in volume.projected.sources
	source.serviceAccountToken != null
	msg := sprintf(
		"volume %s projects a service account token, which is not allowed (allow_projected_token)",
		[messages.quote(volume.name)],
	)
}

deny contains msg if {
	some name in _service_accounts
	not _allowed_account(name)
	msg := sprintf("pod runs as service account %s, which is not allowed (service_accounts)", [messages.quote(name)])
}

# The service accounts a pod names: serviceAccountName, and serviceAccount, its
# deprecated alias (Kubernetes uses it when serviceAccountName is empty); both
# are judged when both are set. Neither: the namespace's "default".
service_accounts contains name if {
	some field in ["serviceAccountName", "serviceAccount"]
	name := k8s.pod.spec[field]
	name != ""
}

default _service_accounts := {"default"}

_service_accounts := service_accounts if count(service_accounts) > 0

_allowed_account(name) if {
	some pattern in params.service_accounts
	match.glob_match(pattern, name)
}
