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

test_header_values if {
	masked := log.mask with input as event
	"/input/pod/spec/containers/0/livenessProbe/httpGet/httpHeaders/0/value" in masked
	"/input/pod/spec/containers/0/livenessProbe/httpGet/httpHeaders/1/value" in masked
	"/input/pod/spec/containers/0/lifecycle/preStop/httpGet/httpHeaders/0/value" in masked
}

test_credential_annotations_upsert_the_whole_object if {
	masked := log.mask with input as event
	{"op": "upsert", "path": "/input/pod/metadata/annotations", "value": {
		"example.com/authorization": "<redacted>",
		"webhook/creds": "<redacted>",
		"plain": "not a secret",
	}} in masked
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

# OPA does not decode "~1" or "~0" in mask pointers: tokens are written as they are.
test_pointer_tokens_are_literal if {
	log.pointer(["a", 0, "c~d"]) == "/a/0/c~d"
}

# -- credentials in arguments, all header values, annotations by key (issue 22, item 2) -------------

# The KubernetesExecutor's worker command (workload_to_command_args): the JSON holds the task's
# Execution API token.
workload := `{"token":"eyJhbGciOiJIUzUxMiJ9.workload-token","ti":{"dag_id":"etl"}}`

upsert(path, value) := {"op": "upsert", "path": path, "value": value}

argv_pod := {"spec": {
	"containers": [
		{
			"name": "base",
			"args": ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", workload],
		},
		{"name": "eq", "command": ["app", concat("", ["--JSON-String=", workload]), "--log-level", "debug", "--Api_Key"]},
		{"name": "split", "command": ["app", "--client-secret"], "args": ["s3cret", "--verbose"]},
		{"name": "shell", "command": ["sh", "-c"], "args": ["dbt run --target prod --Token abc123 --full-refresh"]},
	],
	"initContainers": [{"name": "init", "args": ["--PASSWORD", "hunter2", "--db_password=hunter3"]}],
	"ephemeralContainers": [{"name": "debug", "command": ["curl", "--token value"]}],
}}

test_workload_json_after_its_flag_becomes_a_placeholder if {
	argv_masked := log.mask with input as {"input": {"pod": argv_pod}}
	upsert("/input/pod/spec/containers/0/args/4", "<redacted>") in argv_masked
	not upsert("/input/pod/spec/containers/0/args/3", "<redacted>") in argv_masked
}

test_flag_equals_value_keeps_the_flag_in_any_case if {
	argv_masked := log.mask with input as {"input": {"pod": argv_pod}}
	upsert("/input/pod/spec/containers/1/command/1", "--JSON-String=<redacted>") in argv_masked
	not upsert("/input/pod/spec/containers/1/command/3", "<redacted>") in argv_masked
}

test_a_secret_flag_at_the_end_of_command_takes_its_value_from_args if {
	argv_masked := log.mask with input as {"input": {"pod": argv_pod}}
	upsert("/input/pod/spec/containers/2/args/0", "<redacted>") in argv_masked
}

test_a_flag_inside_a_shell_line if {
	argv_masked := log.mask with input as {"input": {"pod": argv_pod}}
	line := "dbt run --target prod --Token <redacted> --full-refresh"
	upsert("/input/pod/spec/containers/3/args/0", line) in argv_masked
}

test_flags_in_init_and_ephemeral_containers if {
	argv_masked := log.mask with input as {"input": {"pod": argv_pod}}
	upsert("/input/pod/spec/initContainers/0/args/1", "<redacted>") in argv_masked
	upsert("/input/pod/spec/initContainers/0/args/2", "--db_password=<redacted>") in argv_masked
	upsert("/input/pod/spec/ephemeralContainers/0/command/1", "--token <redacted>") in argv_masked
}

test_exactly_these_arguments if {
	argv_masked := log.mask with input as {"input": {"pod": argv_pod}}
	argv_masked == {
		upsert("/input/pod/spec/containers/0/args/4", "<redacted>"),
		upsert("/input/pod/spec/containers/1/command/1", "--JSON-String=<redacted>"),
		upsert("/input/pod/spec/containers/2/args/0", "<redacted>"),
		upsert("/input/pod/spec/containers/3/args/0", "dbt run --target prod --Token <redacted> --full-refresh"),
		upsert("/input/pod/spec/initContainers/0/args/1", "<redacted>"),
		upsert("/input/pod/spec/initContainers/0/args/2", "--db_password=<redacted>"),
		upsert("/input/pod/spec/ephemeralContainers/0/command/1", "--token <redacted>"),
	}
}

exec_pod := {"spec": {"containers": [{
	"name": "base",
	"livenessProbe": {"exec": {"command": ["check", "--Secret", "x"]}},
	"lifecycle": {"postStart": {"exec": {"command": ["register", "--auth-token=y"]}}},
	"readinessProbe": {"httpGet": {"port": 1, "httpHeaders": [{"name": "X-Api-Key", "value": "k"}]}},
	"startupProbe": {"httpGet": {"port": 1, "httpHeaders": [{"name": "Cookie", "value": "session=abc"}]}},
}]}}

test_probe_and_hook_commands if {
	masked := log.mask with input as {"input": {"pod": exec_pod}}
	upsert("/input/pod/spec/containers/0/livenessProbe/exec/command/2", "<redacted>") in masked
	upsert("/input/pod/spec/containers/0/lifecycle/postStart/exec/command/1", "--auth-token=<redacted>") in masked
}

test_every_header_value_whatever_its_name if {
	masked := log.mask with input as {"input": {"pod": exec_pod}}
	"/input/pod/spec/containers/0/readinessProbe/httpGet/httpHeaders/0/value" in masked
	"/input/pod/spec/containers/0/startupProbe/httpGet/httpHeaders/0/value" in masked
}

annotated := {"metadata": {"annotations": {
	"Example.com/DB-Password": "hunter2",
	"vault.example.com/TOKEN": "s.abc",
	"api_KEY": "k",
	"example.com/authorization": "anything",
	"a~b": "Bearer xyz",
	"kubectl.kubernetes.io/last-applied-configuration": `{"spec":{"containers":[{"env":[{"value":"x"}]}]}}`,
	"team": "data",
}}}

# OPA splits a mask pointer at every "/" and does not decode "~1": an annotation key with a "/" cannot
# be addressed, so the whole annotations object is replaced by a copy with the secrets redacted.
test_annotations_with_secret_keys_in_any_case if {
	masked := log.mask with input as {"input": {"pod": annotated}}
	masked == {upsert("/input/pod/metadata/annotations", {
		"Example.com/DB-Password": "<redacted>",
		"vault.example.com/TOKEN": "<redacted>",
		"api_KEY": "<redacted>",
		"example.com/authorization": "<redacted>",
		"a~b": "<redacted>",
		"kubectl.kubernetes.io/last-applied-configuration": "<redacted>",
		"team": "data",
	})}
}

test_no_annotation_upsert_without_a_secret if {
	masked := log.mask with input as {"input": {"pod": {"metadata": {"annotations": {"team": "data"}}}}}
	count(masked) == 0
}

probe_with_header := {"httpGet": {"port": 1, "httpHeaders": [{"name": "X-Key", "value": "k"}]}}

argv_patch_event := {"input": {"pod": {}}, "result": {"patch": [
	{"op": "add", "path": "/spec/containers/-", "value": {"name": "proxy", "args": ["--upstream-token", "t0k"]}},
	{"op": "replace", "path": "/spec/containers/0/args", "value": ["--Password", "p", "x"]},
	{"op": "add", "path": "/spec/containers/0/args/-", "value": "--api-key=k"},
	{"op": "add", "path": "/metadata/annotations/vault~1Token", "value": "s.abc"},
	{"op": "add", "path": "/metadata/annotations", "value": {"x/Secret": "s", "team": "data"}},
	{"op": "replace", "path": "/metadata", "value": {"annotations": {"PASSWORD": "p"}}},
	{"op": "add", "path": "/metadata/annotations/team", "value": "data"},
	{"op": "add", "path": "/spec/containers/0/livenessProbe", "value": probe_with_header},
	{"op": "add", "path": "/spec/initContainers/0/startupProbe", "value": {"exec": {"command": ["check", "--token=t"]}}},
]}}

test_secrets_in_arguments_and_annotations_a_patch_writes if {
	masked := log.mask with input as argv_patch_event
	masked == {
		upsert("/result/patch/0/value/args/1", "<redacted>"),
		upsert("/result/patch/1/value/1", "<redacted>"),
		upsert("/result/patch/2/value", "--api-key=<redacted>"),
		upsert("/result/patch/3/value", "<redacted>"),
		upsert("/result/patch/4/value", {"x/Secret": "<redacted>", "team": "data"}),
		upsert("/result/patch/5/value/annotations", {"PASSWORD": "<redacted>"}),
		"/result/patch/7/value/httpGet/httpHeaders/0/value",
		upsert("/result/patch/8/value/exec/command/1", "--token=<redacted>"),
	}
}

test_values_of_other_types if {
	masked := log.mask with input as {"input": {"pod": {
		"metadata": {"annotations": {"count": 5, "Token": 7}},
		"spec": {"containers": [{"name": "c", "args": ["--token", 5, 6], "command": "not a list"}]},
	}}}
	masked == {
		upsert("/input/pod/metadata/annotations", {"count": 5, "Token": "<redacted>"}),
		upsert("/input/pod/spec/containers/0/args/1", "<redacted>"),
	}
}

test_the_patterns_are_built_from_secret_words if {
	words := concat("|", [replace(word, "-", "[-_]") | some word in log.secret_words])
	log.secret_word == concat("", ["(?i)", words])
	space := `\t\n\v\f\r `
	flag := sprintf(`(-{1,2}[a-z0-9_.-]*(?:%s)[a-z0-9_.-]*)`, [words])
	value := sprintf(`("[^"]*"|'[^']*'|[^%s]+)`, [space])
	log.inline_flag == sprintf(`(?i)([%s])%s(=|[%s]+)%s`, [space, flag, space, value])
}

test_a_secret_annotation_key_in_the_op_path_alone if {
	masked := log.mask with input as {"input": {"pod": {}}, "result": {"patch": [
		{"op": "add", "path": "/metadata/annotations/vault.example.com~1Token", "value": "s.abc"},
		{"op": "add", "path": "/spec/containers/0/args/-", "value": "--verbose"},
	]}}
	masked == {upsert("/result/patch/0/value", "<redacted>")}
}

# -- an admission webhook's event (policies/lib/admission.rego): the AdmissionReview is the input --------

job_pod := {"spec": {"containers": [{"name": "c", "args": ["--token", "t0k"], "env": [{"name": "P", "value": "x"}]}]}}

review_event := {
	"input": {"request": {
		"object": object.union(pod, {"metadata": {"annotations": {"webhook/creds": "Bearer abc"}}}),
		"oldObject": {"metadata": {}, "spec": {"jobTemplate": {"spec": {"template": job_pod}}}},
	}},
	"result": {"response": {"patch": base64.encode(json.marshal([{
		"op": "add", "path": "/spec/containers/0/env/-",
		"value": {"name": "INJECTED", "value": "s3cret"},
	}]))}},
}

test_an_admission_reviews_pods_and_templates_are_masked_like_the_hooks if {
	masked := log.mask with input as review_event
	"/input/request/object/spec/containers/0/env/0/value" in masked
	"/input/request/object/spec/initContainers/0/env/0/value" in masked
	"/input/request/object/spec/containers/0/livenessProbe/httpGet/httpHeaders/1/value" in masked
	annotations := {"webhook/creds": "<redacted>"}
	{"op": "upsert", "path": "/input/request/object/metadata/annotations", "value": annotations} in masked
	"/input/request/oldObject/spec/jobTemplate/spec/template/spec/containers/0/env/0/value" in masked
	{
		"op": "upsert",
		"path": "/input/request/oldObject/spec/jobTemplate/spec/template/spec/containers/0/args/1",
		"value": "<redacted>",
	} in masked
	"/result/response/patch" in masked
}

test_a_deployments_template_is_masked if {
	event := {"input": {"request": {"object": {"spec": {"template": job_pod}}}}}
	masked := log.mask with input as event
	"/input/request/object/spec/template/spec/containers/0/env/0/value" in masked
}

patch(ops) := {"input": {"request": {}}, "result": {"response": {"patch": base64.encode(json.marshal(ops))}}}

test_an_admission_patch_is_kept_unless_it_could_hold_a_secret if {
	harmless := [{"op": "add", "path": "/metadata/labels/team", "value": "data"}, {"op": "remove", "path": "/x"}]
	count(log.mask) == 0 with input as patch(harmless)
	sidecar_op := {"op": "add", "path": "/spec/template/spec/initContainers/-", "value": sidecar}
	"/result/response/patch" in log.mask with input as patch([sidecar_op])
	flag_op := {"op": "add", "path": "/spec/containers/0/args/-", "value": "--password=x"}
	"/result/response/patch" in log.mask with input as patch([flag_op])
}
