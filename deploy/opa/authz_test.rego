package system.authz_test

import data.system.authz

request(method, url) := {"method": method, "path": split(trim_prefix(url, "/"), "/"), "params": {}, "headers": {}}

test_the_hooks_decision_and_doctors_queries_are_allowed if {
	authz.allow with input as request("POST", "/v1/data/airflow/pod/decision")
	provenance := object.union(request("POST", "/v1/data/airflow/pod/decision"), {"params": {"provenance": ["true"]}})
	authz.allow with input as provenance
	authz.allow with input as request("POST", "/v1/data/airflow/pod/lib/config/advisories")
}

test_the_admission_webhooks_queries_are_allowed if {
	authz.allow with input as request("POST", "/v0/data/airflow/pod/admission/mutate")
	authz.allow with input as request("POST", "/v0/data/airflow/pod/admission/validate")
}

test_health_and_metrics_are_allowed if {
	authz.allow with input as request("GET", "/health")
	authz.allow with input as object.union(request("GET", "/health"), {"params": {"bundles": ["true"]}})
	authz.allow with input as request("GET", "/metrics")
}

writes := [
	["PUT", "/v1/policies/etc/opa/mask.rego"],
	["DELETE", "/v1/policies/etc/opa/mask.rego"],
	["PUT", "/v1/policies/etc/opa/authz.rego"],
	["PUT", "/v1/data/airflow/pod/config"],
	["PATCH", "/v1/data/airflow/pod/config"],
	["DELETE", "/v1/data/airflow/pod/config"],
	["PUT", "/v1/data"],
	["PATCH", "/v1/data"],
	["PUT", "/v1/data/airflow_opa_mutation_doctor_probe"],
	["PUT", "/v1/data/system/authz"],
]

test_every_write_is_refused if {
	every pair in writes {
		not authz.allow with input as request(pair[0], pair[1])
	}
}

reads := [
	["GET", "/v1/policies"],
	["GET", "/v1/policies/etc/opa/mask.rego"],
	["GET", "/v1/data"],
	["GET", "/v1/data/airflow/pod/config"],
	["GET", "/v1/status"],
	["GET", "/v1/config"],
	["GET", "/v1/query"],
	["POST", "/v1/query"],
	["POST", "/v1/compile"],
	["POST", "/v1/data"],
	["POST", "/v1/data/airflow/pod/config"],
	["POST", "/v1/data/airflow/pod/decision/"], # not the decision: a trailing empty segment
	["POST", "/v1/data/airflow/pod"],
	["POST", "/v0/data/airflow/pod/decision"],
	["POST", "/v1/data/airflow/pod/admission/mutate"],
	["GET", "/v1/data/airflow/pod/decision"],
	["POST", "/"],
	["GET", "/"],
	["GET", "/health/live"],
	["POST", "/health"],
	["GET", "/debug/pprof/"],
]

test_other_reads_and_queries_are_refused if {
	every pair in reads {
		not authz.allow with input as request(pair[0], pair[1])
	}
}
