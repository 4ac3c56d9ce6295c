package airflow.pod.policies.airflow_labels

# Adds team / cost-center labels looked up from input.airflow.dag_id. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.ops

# mapping: dag_id or dag_id glob -> {label: value}
defaults := {
	"enabled": false,
	"params": {"mapping": {}},
}

params := config.params("airflow_labels")

_dag_id := k8s.airflow.dag_id

# The mapping key that applies: the exact dag_id, else the longest matching
# glob (ties: the lexicographically smallest).
mapping_key := _dag_id if {
	is_object(params.mapping[_dag_id])
} else := min({key |
	some key in _globs
	count(key) == _longest
})

_longest := max({count(key) | some key in _globs})

_globs contains key if {
	some key, labels in params.mapping
	is_object(labels)
	match.glob_match(key, _dag_id)
}

# The labels of the applicable mapping entry (null values dropped).
labels[key] := value if {
	some key, value in params.mapping[mapping_key]
	value != null
}

# Label values Kubernetes accepts.
_valid_value(value) if regex.match(`^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$`, value)

patch contains op if {
	some key, value in labels
	not key in k8s.protected_labels
	_valid_value(value)
	some op in ops.add_if_absent(k8s.pod, "", ["metadata", "labels", key], value)
}

warn contains sprintf("mapping %q sets the Airflow label %q, which is never changed; ignored", [mapping_key, key]) if {
	some key, _ in labels
	key in k8s.protected_labels
}

warn contains msg if {
	some key, value in labels
	not key in k8s.protected_labels
	not _valid_value(value)
	msg := sprintf(
		"mapping %q sets label %q to %s, which is not a valid label value; ignored",
		[mapping_key, key, json.marshal(value)],
	)
}
