package airflow.pod

import rego.v1

decision := {
	"patch": array.concat(
		[op | some op in data.airflow.pod.team_label.ops],
		[op | some op in data.airflow.pod.token_off.ops],
	),
	"deny": [m | some m in data.airflow.pod.no_privileged.deny],
	"warn": [m | some m in data.airflow.pod.tag_warn.warn],
}
