package system.log_test

import data.system.log

pre_stop_headers := [{"name": "proxy-authorization", "value": "Basic dXNlcjpwYXNz"}]

pod := {"spec": {
	"containers": [
		{
			"name": "base",
			"env": [
				{"name": "AIRFLOW_CONN_DB", "value": "postgres://u:hunter2@db/airflow"},
				{"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
				{"name": "EMPTY", "value": ""},
			],
			"livenessProbe": {"httpGet": {"port": 8080, "httpHeaders": [
				{"name": "X-Trace", "value": "1"},
				{"name": "Authorization", "value": "Bearer probe-token"},
			]}},
			"lifecycle": {"preStop": {"httpGet": {"port": 8080, "httpHeaders": pre_stop_headers}}},
		},
		{"name": "sidecar"},
	],
	"initContainers": [{"name": "init", "env": [{"name": "TOKEN", "value": "init-secret"}]}],
	"ephemeralContainers": [{"name": "debug", "env": [{"name": "K", "value": "v"}]}],
}}

event := {
	"input": {"pod": object.union(pod, {"metadata": {"annotations": {
		"example.com/authorization": "anything",
		"webhook/creds": "Bearer abc.def",
		"plain": "not a secret",
	}}})},
	"result": {"patch": [
		{"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "INJECTED", "value": "s3cret"}},
		{"op": "add", "path": "/spec/containers/1/env", "value": [{"name": "A", "value": "b"}]},
		{"op": "remove", "path": "/spec/containers/0/env/0"},
		{"op": "add", "path": "/metadata/labels/team", "value": "data"},
	]},
}

test_env_values_of_every_container_kind if {
	masked := log.mask with input as event
	"/input/pod/spec/containers/0/env/0/value" in masked
	"/input/pod/spec/containers/0/env/2/value" in masked
	"/input/pod/spec/initContainers/0/env/0/value" in masked
	"/input/pod/spec/ephemeralContainers/0/env/0/value" in masked
}

test_env_from_secret_refs_have_no_value_to_mask if {
	masked := log.mask with input as event
	not "/input/pod/spec/containers/0/env/1/value" in masked
}

test_authorization_headers if {
	masked := log.mask with input as event
	"/input/pod/spec/containers/0/livenessProbe/httpGet/httpHeaders/1/value" in masked
	"/input/pod/spec/containers/0/lifecycle/preStop/httpGet/httpHeaders/0/value" in masked
	not "/input/pod/spec/containers/0/livenessProbe/httpGet/httpHeaders/0/value" in masked
}

test_credential_annotations_are_escaped_pointers if {
	masked := log.mask with input as event
	"/input/pod/metadata/annotations/example.com~1authorization" in masked
	"/input/pod/metadata/annotations/webhook~1creds" in masked
	not "/input/pod/metadata/annotations/plain" in masked
}

test_env_values_written_by_the_patch if {
	masked := log.mask with input as event
	"/result/patch/0/value" in masked
	"/result/patch/1/value" in masked
	not "/result/patch/2/value" in masked
	not "/result/patch/3/value" in masked
}

test_exactly_these_pointers if {
	masked := log.mask with input as event
	count(masked) == 10
}

test_nothing_to_mask_in_a_bare_pod if {
	masked := log.mask with input as {"input": {"pod": {"spec": {"containers": [{"name": "c"}]}}}, "result": {}}
	count(masked) == 0
}

test_event_without_a_pod if {
	masked := log.mask with input as {"input": {"something": "else"}}
	count(masked) == 0
}

test_escape if {
	log.escape("a/b~c") == "a~1b~0c"
}

sidecar := {
	"name": "proxy",
	"env": [{"name": "UPSTREAM_TOKEN", "value": "sidecar-secret"}, {"name": "FROM", "valueFrom": {}}],
	"readinessProbe": {"httpGet": {"port": 1, "httpHeaders": [{"name": "Authorization", "value": "Bearer x"}]}},
}

whole_pod := {"spec": {"initContainers": [{"name": "i", "env": [{"name": "K", "value": "init-secret"}]}]}}

patch_event := {"input": {"pod": {}}, "result": {"patch": [
	{"op": "add", "path": "/spec/containers/-", "value": sidecar},
	{"op": "replace", "path": "", "value": whole_pod},
	{"op": "add", "path": "/metadata/annotations/env", "value": "not an env var"},
]}}

test_secrets_inside_values_a_patch_writes if {
	masked := log.mask with input as patch_event
	masked == {
		"/result/patch/0/value/env/0/value",
		"/result/patch/0/value/readinessProbe/httpGet/httpHeaders/0/value",
		"/result/patch/1/value/spec/initContainers/0/env/0/value",
	}
}

test_pointer_tokens_are_escaped if {
	log.pointer(["a/b", 0, "c~d"]) == "/a~1b/0/c~0d"
}
