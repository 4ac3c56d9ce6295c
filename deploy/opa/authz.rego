# OPA's own API authorization for every shipped OPA (the sidecar, the admission server, docker-compose).
#
# Task code shares the sidecar's loopback (KubernetesExecutor and Celery workers; LocalExecutor tasks run
# in the scheduler pod). Without this policy it could PUT /v1/policies/<mask> (decision logs in clear) or
# write data the policies read. OPA run with --authorization=basic asks data.system.authz.allow of every
# request, on the data API and on the diagnostic address alike (v1.22 server.go), and answers 401 when it
# is not true. Loaded from disk beside config.yaml and mask.rego: the signed bundle's roots (airflow/pod)
# cannot replace it, and with every write refused nothing else can.
#
# Allowed, nothing else: the decisions (POST of the paths below, any query parameters: ?provenance=true,
# ?metrics=true), GET /health (?bundles=true: the probes, the hook's require_bundles, doctor) and
# GET /metrics (Prometheus). Not allowed: every PUT, PATCH and DELETE, POST /v1/query and /v1/compile,
# GET of /v1/data, /v1/policies, /v1/status and /v1/config (policy source and configuration stay inside).
# A deployment that sets [opa_mutation] decision_path to something else adds it to decision_paths.
# See https://www.openpolicyagent.org/docs/security#authentication-and-authorization
package system.authz

# Queried with POST /v1/data/<path> ({"input": ...}).
decision_paths := {
	"airflow/pod/decision", # the hook ([opa_mutation] decision_path's default)
	"airflow/pod/lib/config/advisories", # airflow-opa-mutation doctor: the configuration's advisories
}

# Queried with POST /v0/data/<path> (the AdmissionReview is the input): the admission webhooks.
admission_paths := {
	"airflow/pod/admission/mutate",
	"airflow/pod/admission/validate",
}

# METADATA
# title: allow
# description: Whether OPA serves this request (input.method, input.path split at "/", input.params).
# entrypoint: true
# scope: document
default allow := false

allow if {
	input.method == "POST"
	some path in decision_paths
	input.path == array.concat(["v1", "data"], split(path, "/"))
}

allow if {
	input.method == "POST"
	some path in admission_paths
	input.path == array.concat(["v0", "data"], split(path, "/"))
}

# Read-only and the same for everyone: liveness and readiness (any ?bundles / ?plugins), and metrics.
allow if {
	input.method == "GET"
	input.path in [["health"], ["metrics"]]
}
