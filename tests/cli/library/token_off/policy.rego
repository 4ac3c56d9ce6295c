package airflow.pod.token_off

import rego.v1

ops contains {"op": "add", "path": "/spec/automountServiceAccountToken", "value": false, "policy": "token_off"} if {
	not "automountServiceAccountToken" in object.keys(input.pod.spec)
}
