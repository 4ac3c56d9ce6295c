package airflow.pod.policies.service_account_token

# Sets spec.automountServiceAccountToken: false unless the pod opts in.
# Opt-in: the annotation named by `opt_in_annotation` set to "true", or any
# explicit spec.automountServiceAccountToken (the pod's own choice is kept).

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.ops

defaults := {
	"enabled": true,
	"params": {"opt_in_annotation": "airflow-opa-mutation/automount-service-account-token"},
}

params := config.params("service_account_token")

opted_in if k8s.annotations[params.opt_in_annotation] == "true"

patch contains op if {
	not opted_in
	some op in ops.add_if_absent(k8s.pod, "", ["spec", "automountServiceAccountToken"], false)
}
