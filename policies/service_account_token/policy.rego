package airflow.pod.policies.service_account_token

# Turns the service-account token off. What the pod says about it counts only
# as far as the configuration allows (`mode`); a token is otherwise granted
# by the configuration alone (`token_grants`, keyed on what Airflow vouches
# for, never on the pod author's labels or annotations). Denies what the
# automount setting cannot stop: a projected volume with a serviceAccountToken
# source (unless `allow_projected_token`), and service accounts outside
# `service_accounts` or inside `denied_service_accounts`. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.messages
import data.airflow.pod.lib.ops

defaults := {
	"enabled": true,
	"params": {
		# force_off | respect_spec | annotation (README.md, "Modes")
		"mode": "force_off",
		# {name: {"match": <matcher>, "service_accounts": [globs]}}: pods whose token is their own choice
		"token_grants": {},
		# read in mode "annotation" only
		"opt_in_annotation": "airflow-opa-mutation/automount-service-account-token",
		"allow_projected_token": false,
		# globs on the service account the pod runs as
		"service_accounts": ["*"],
		"denied_service_accounts": [],
	},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {
	"mode": "string",
	"token_grants": "object",
	"opt_in_annotation": "string",
	"allow_projected_token": "boolean",
	"service_accounts": "string[]",
	"denied_service_accounts": "string[]",
}

params := config.params("service_account_token")

modes := {"force_off", "respect_spec", "annotation"}

# An unknown mode (a typo) turns tokens off, as force_off does: a mistake
# must not hand out tokens. It is warned about below.
default mode := "force_off"

mode := params.mode if params.mode in modes

_path := ["spec", "automountServiceAccountToken"]

_pointer := "/spec/automountServiceAccountToken"

_asked := object.get(k8s.pod, _path, null)

opted_in if k8s.annotations[params.opt_in_annotation] == "true"

# Names of the grants that hold for the pod. A grant is a matcher
# (lib/match.rego) under "match", with at least one condition and none on
# labels or annotations (those are the pod author's, so keying a grant on
# them would let the author grant themselves a token). Ids that only the pod
# vouches for never match (input.airflow.untrusted). With "service_accounts",
# every account the pod names must match one of those globs too.
granted contains name if {
	some name, grant in object.get(params, "token_grants", {})
	matcher := grant.match
	count(matcher) > 0
	count(object.keys(matcher) & {"labels", "annotations"}) == 0
	match.applies(matcher, k8s.pod, k8s.airflow)
	_grant_accounts(grant)
}

_grant_accounts(grant) if object.get(grant, "service_accounts", null) == null

_grant_accounts(grant) if {
	globs := grant.service_accounts
	every name in _service_accounts {
		match.any_glob(globs, name)
	}
}

# The pod's own setting stands (true, false or none, which Kubernetes reads
# as true): a grant holds, or mode "annotation" and the pod opted in.
_own_choice if count(granted) > 0

_own_choice if {
	mode == "annotation"
	opted_in
}

# An explicit value stands in these modes.
_spec_modes := {"respect_spec", "annotation"}

# The policy turns the token off: the pod sets nothing, or (outside the
# modes that keep an explicit value) sets anything but false.
_turns_off if {
	not _own_choice
	_asked == null
}

_turns_off if {
	not _own_choice
	not mode in _spec_modes
	_asked != false
}

patch contains op if {
	_turns_off
	_asked == null
	some op in ops.add_if_absent(k8s.pod, "", _path, false)
}

patch contains ops.replace_op(_pointer, false) if {
	_turns_off
	_asked != null
}

# The API server's own token volume goes with the token (automount.rego).
patch contains op if {
	_turns_off
	some op in automount_removals
}

# The annotation of the old default, on a pod it no longer grants a token.
warn contains msg if {
	mode != "annotation"
	count(granted) == 0
	k8s.annotations[params.opt_in_annotation] == "true"
	msg := sprintf(
		"annotation %s grants no token in mode %q; tokens are granted by the configuration (token_grants)",
		[messages.quote(params.opt_in_annotation), mode],
	)
}

warn contains msg if {
	params.mode != null
	not params.mode in modes
	msg := sprintf("unknown mode %s: tokens are turned off as in mode \"force_off\"", [messages.quote(params.mode)])
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
	not match.any_glob(params.service_accounts, name)
	msg := sprintf("pod runs as service account %s, which is not allowed (service_accounts)", [messages.quote(name)])
}

deny contains msg if {
	some name in _service_accounts
	match.any_glob(object.get(params, "denied_service_accounts", []), name)
	msg := sprintf("pod runs as service account %s, which is denied (denied_service_accounts)", [messages.quote(name)])
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
