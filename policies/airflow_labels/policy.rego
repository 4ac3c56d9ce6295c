package airflow.pod.policies.airflow_labels

# Adds static labels to every pod and team / cost-center labels looked up from
# input.airflow.dag_id. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.ops

# mapping: dag_id or dag_id glob -> {label: value}; labels: {label: value} for every pod
defaults := {
	"enabled": false,
	"params": {"mapping": {}, "labels": {}},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"mapping": "object", "labels": "object"}

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

# Where each label comes from, for messages: [source, key, value]. The
# mapping entry's labels win over the static ones (null values dropped).
_sources := array.concat(
	[[`labels`, key, value] |
		some key, value in params.labels
		value != null
		not _mapped[key]
	],
	[[sprintf("mapping %q", [mapping_key]), key, value] | some key, value in _mapped],
)

_mapped[key] := value if {
	some key, value in params.mapping[mapping_key]
	value != null
}

# The labels the policy adds where absent.
labels[key] := value if some [_, key, value] in _sources

# Label values Kubernetes accepts.
_valid_value(value) if regex.match(`^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$`, value)

patch contains op if {
	some key, value in labels
	not key in k8s.protected_labels
	_valid_value(value)
	some op in ops.add_if_absent(k8s.pod, "", ["metadata", "labels", key], value)
}

warn contains sprintf("%s sets the Airflow label %q, which is never changed; ignored", [source, key]) if {
	some [source, key, _] in _sources
	key in k8s.protected_labels
}

warn contains msg if {
	some [source, key, value] in _sources
	not key in k8s.protected_labels
	not _valid_value(value)
	msg := sprintf(
		"%s sets label %q to %s, which is not a valid label value; ignored",
		[source, key, json.marshal(value)],
	)
}
