package airflow.pod.policies.node_placement

# Adds nodeSelector entries and tolerations of the first matching rule. See README.md.

import data.airflow.pod.lib.config
import data.airflow.pod.lib.k8s
import data.airflow.pod.lib.match
import data.airflow.pod.lib.ops

# rules: [{"match": <matcher>, "node_selector": {...}, "tolerations": [...]}]
defaults := {
	"enabled": false,
	"params": {"rules": []},
}

# The type of each parameter (policies/README.md, "Configuration errors").
schema := {"rules": "object[]"}

params := config.params("node_placement")

# Index of the first rule whose `match` (a matcher, see lib/match.rego;
# absent = every pod) applies.
rule_index := min({i |
	some i, rule in params.rules
	match.applies(object.get(rule, "match", {}), k8s.pod, k8s.airflow)
})

_rule := params.rules[rule_index]

patch contains op if {
	some key, value in object.get(_rule, "node_selector", {})
	is_string(value)
	some op in ops.add_if_absent(k8s.pod, "", ["spec", "nodeSelector", key], value)
}

patch contains op if {
	some toleration in object.get(_rule, "tolerations", [])
	is_object(toleration)
	some op in ops.append_if_absent(k8s.pod, "", ["spec", "tolerations"], toleration)
}
