package airflow.pod.lib.bounds_test

# A pod cannot make the decision's messages large: however many violating
# containers, however long its strings, deny and warn stay within a size that
# depends on the number of policies (lib/messages.rego). 50 containers here
# (opa test has a 5 s timeout, and coverage traces every step);
# tests/test_decision_size_bounds.py sends 1,500 containers and a
# 600,000-character image to a real OPA server and measures the response.

import data.airflow.pod.decision
import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.lib.messages

_config := {"policies": {"allowed_registries": {"enabled": true, "params": {"registries": ["registry.example.com"]}}}}

_container(i) := {
	"name": sprintf("pad-%d", [i]),
	"image": "evil.io/x:latest",
	"securityContext": object.union(fx.hardened_context, {"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}}),
}

# 50 containers, each privileged, adding a capability, from a disallowed
# registry, with a mutable tag: 200 findings.
_many := json.patch(fx.hardened_pod, [{
	"op": "add", "path": "/spec/containers",
	"value": array.concat(fx.hardened_pod.spec.containers, [_container(i) | some i in numbers.range(1, 50)]),
}])

_pad := concat("", ["<" | some _ in numbers.range(1, 1000)])

# One container whose image is "evil.io/" and 600,000 "<" (OPA writes each as
# the six bytes \u003c).
_padded := json.patch(fx.hardened_pod, [{"op": "add", "path": "/spec/containers/-", "value": {
	"name": "pad",
	"image": concat("", ["evil.io/", concat("", [_pad | some _ in numbers.range(1, 600)])]),
}}])

# Messages per kind: at most (max_per_policy + 1) per policy.
_bounded(list) if {
	every policy in {m.policy | some m in list} {
		count([m | some m in list; m.policy == policy]) <= messages.max_per_policy + 1
	}
	every m in list {
		count(m.msg) <= messages.max_message_chars + 30
	}
}

test_many_violating_containers_give_a_bounded_decision if {
	d := decision with input as {"pod": _many, "airflow": fx.ke_airflow} with data.airflow.pod.lib.config.user as _config
	_bounded(d.deny)
	_bounded(d.warn)
	d.patch == []

	# deny: allowed_registries 20 + 1 summary (the base container too), deny_privileged 20 + 1,
	# pod_security 2 (one per failed check, naming the containers, each message capped)
	count(d.deny) == 44
	{m.msg | some m in d.deny; startswith(m.msg, "...")} == {"... and 80 more", "... and 31 more"}
	[m.msg | some m in d.warn; startswith(m.msg, "...")] == ["... and 30 more"]
	count(json.marshal(d)) < 12000
}

test_a_padded_image_gives_a_bounded_decision if {
	d := decision with input as {"pod": _padded, "airflow": fx.ke_airflow} with data.airflow.pod.lib.config.user as _config
	_bounded(d.deny)
	_bounded(d.warn)
	{m.policy | some m in d.deny} == {"allowed_registries"}
	{m.policy | some m in d.warn} == {"image_tag"}
	count(json.marshal(d)) < 5000
}
