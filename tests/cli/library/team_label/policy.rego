package airflow.pod.team_label

import rego.v1

default team := "unowned"

team := data.airflow.pod.config.team_label.default

ops contains {"op": "add", "path": "/metadata/labels/team", "value": team, "policy": "team_label"} if {
	not input.pod.metadata.labels.team
}
