# Decision-log masking for airflow-opa-mutation.
#
# Load this file next to the policies when OPA's decision logs are on (console or a remote
# service), so that no secret a pod carries reaches the logs. OPA evaluates data.system.log.mask
# for every decision-log event (the event is the input; the decision's own input is input.input)
# and applies each mask it returns: a JSON pointer is erased (the event lists it under "erased"),
# an {"op": "upsert", "path": ..., "value": ...} replaces what is there (listed under "masked").
#
# The pods are the hook's input.pod and, for the admission webhooks (policies/lib/admission.rego, whose
# input is the AdmissionReview), the review's object and oldObject and the pod templates they carry;
# the webhook's base64 patch is erased whole when it could hold a secret.
#
# Masked, in every container, init container and ephemeral container:
# - every env var value (erased);
# - every HTTP header value of probes and lifecycle hooks, whatever the header's name (erased);
# - the value of a secret flag in command and args, and in exec probes and hooks: the argument after
#   "--json-string" (the KubernetesExecutor's workload JSON, which holds the task's Execution API
#   token), "--password", "--token", "--api-key", ... (secret_words), and the part after "=" or a
#   space in "--password=x", "--token x" or a shell line "dbt run --token x" (replaced by
#   "<redacted>", so the log still shows the flag was there);
# - annotation values whose key holds a secret word ("auth" covers Authorization) or is kubectl's
#   last-applied-configuration, or whose value is a bearer or basic credential ("<redacted>").
# In the decision's result, the same inside every value a patch op writes (a sidecar container, a
# list of containers, a whole spec or pod, an annotation), and the whole value of an op that writes
# into an env list.
#
# OPA masks by concrete JSON pointers only (no wildcards), so the pointers are generated from the
# event itself. OPA splits a pointer at every "/" and does not decode "~1" or "~0" (v1.22,
# plugins/logs/mask.go): a key containing "/" (most annotation keys) cannot be addressed, so
# annotations are masked by upserting a copy of the whole object. Upsert, not erase, for array
# elements: erasing one shifts the indices the next pointer relies on.
# See https://www.openpolicyagent.org/docs/management-decision-logs

# OPA reads the mask from this package, wherever the file lives.
package system.log

container_kinds := ["containers", "initContainers", "ephemeralContainers"]

probe_kinds := ["livenessProbe", "readinessProbe", "startupProbe"]

lifecycle_hooks := ["postStart", "preStop"]

# A flag or annotation key is secret when its name contains one of these words, in any case, with
# "_" or "-" inside it. The hook's dry-run diff uses the same list (SECRET_WORDS in
# hook/airflow_opa_mutation/_redact.py; tests/test_secret_redaction.py checks they agree).
secret_words := [
	"json-string", # Airflow 3's workload JSON: the task's Execution API token
	"password",
	"passwd",
	"secret",
	"token",
	"api-key",
	"apikey",
	"auth",
	"credential",
	"private-key",
	"access-key",
	"conn-uri", # airflow connections add --conn-uri, --conn-extra, --conn-json
	"conn-extra",
	"conn-json",
	"dsn",
]

redacted := "<redacted>"

# METADATA
# title: mask
# description: JSON pointers OPA erases, and upserts it applies, to each decision-log event.
# entrypoint: true
# scope: document
mask contains sprintf("%s/spec/%s/%d/env/%d/value", [at, kind, i, j]) if {
	some [at, pod] in pods
	some kind in container_kinds
	some i, container in pod.spec[kind]
	some j, env in container.env
	is_string(env.value)
}

# Header values of HTTP probes: Authorization, X-Api-Key, Cookie, ... all go.
mask contains sprintf("%s/spec/%s/%d/%s/httpGet/httpHeaders/%d/value", [at, kind, i, probe, j]) if {
	some [at, pod] in pods
	some kind in container_kinds
	some i, container in pod.spec[kind]
	some probe in probe_kinds
	some j, header in container[probe].httpGet.httpHeaders
	"value" in object.keys(header)
}

# Header values of lifecycle hooks.
mask contains sprintf("%s/spec/%s/%d/lifecycle/%s/httpGet/httpHeaders/%d/value", [at, kind, i, hook, j]) if {
	some [at, pod] in pods
	some kind in container_kinds
	some i, container in pod.spec[kind]
	some hook in lifecycle_hooks
	some j, header in container.lifecycle[hook].httpGet.httpHeaders
	"value" in object.keys(header)
}

# Secret flags' values in command and args of containers ...
mask contains upsert if {
	some [at, pod] in pods
	some kind in container_kinds
	some i, container in pod.spec[kind]
	some upsert in program_masks(sprintf("%s/spec/%s/%d", [at, kind, i]), container)
}

# ... of their exec probes ...
mask contains upsert if {
	some [at, pod] in pods
	some kind in container_kinds
	some i, container in pod.spec[kind]
	some probe in probe_kinds
	some upsert in program_masks(sprintf("%s/spec/%s/%d/%s/exec", [at, kind, i, probe]), container[probe].exec)
}

# ... and of their exec hooks.
mask contains upsert if {
	some [at, pod] in pods
	some kind in container_kinds
	some i, container in pod.spec[kind]
	some hook in lifecycle_hooks
	program := container.lifecycle[hook].exec
	some upsert in program_masks(sprintf("%s/spec/%s/%d/lifecycle/%s/exec", [at, kind, i, hook]), program)
}

# Annotations holding a credential: the whole object, with those values redacted.
mask contains {"op": "upsert", "path": concat("", [at, "/metadata/annotations"]), "value": masked} if {
	some [at, pod] in pods
	annotations := pod.metadata.annotations
	suspect_annotations(annotations)
	masked := masked_annotations(annotations)
	masked != annotations
}

# An admission webhook's answer (policies/lib/admission.rego) carries its patch as base64 JSON, which OPA
# cannot mask in part: erased whole when it writes into an env list, a secret-looking value or a header.
mask contains "/result/response/patch" if {
	some op in json.unmarshal(base64.decode(input.result.response.patch))
	admission_patch_secret(op)
}

# Values the decision's patch writes into an env list.
mask contains sprintf("/result/patch/%d/value", [i]) if {
	some i, op in input.result.patch
	regex.match(`^/spec/(containers|initContainers|ephemeralContainers)/[^/]+/env(/|$)`, op.path)
	"value" in object.keys(op)
}

# Env values and header values anywhere inside what a patch op writes: a whole container, a list of
# containers, the whole spec or pod.
mask contains concat("", [sprintf("/result/patch/%d/value", [i]), pointer(path)]) if {
	some i, op in input.result.patch
	walk(op.value, [path, leaf])
	secret_leaf(path, leaf)
}

# Secret flags' values in every program (container, exec probe or hook) inside what a patch op writes.
mask contains upsert if {
	patch_suspect
	some i, op in input.result.patch
	walk(op.value, [path, node])
	runs(node)
	some upsert in program_masks(concat("", [sprintf("/result/patch/%d/value", [i]), pointer(path)]), node)
}

# A patch op that writes a whole command or args list ...
mask contains upsert if {
	patch_suspect
	some i, op in input.result.patch
	regex.match(`/(command|args)$`, op.path)
	is_array(op.value)
	some upsert in vector_masks(sprintf("/result/patch/%d/value", [i]), op.value)
}

# ... or one argument of it (only its own "--flag=value" or shell line can be judged).
mask contains upsert if {
	patch_suspect
	some i, op in input.result.patch
	regex.match(`/(command|args)/[^/]+$`, op.path)
	is_string(op.value)
	regex.match(secret_word, op.value)
	value := masked_arg([op.value], 0)
	upsert := {"op": "upsert", "path": sprintf("/result/patch/%d/value", [i]), "value": value}
}

# Annotations inside what a patch op writes (the metadata, the whole pod).
mask contains {"op": "upsert", "path": at, "value": masked} if {
	patch_suspect
	some i, op in input.result.patch
	walk(op.value, [path, annotations])
	count(path) > 0
	path[count(path) - 1] == "annotations"
	masked := masked_annotations(annotations)
	masked != annotations
	at := concat("", [sprintf("/result/patch/%d/value", [i]), pointer(path)])
}

# A patch op that writes the whole annotations object ...
mask contains {"op": "upsert", "path": sprintf("/result/patch/%d/value", [i]), "value": masked} if {
	patch_suspect
	some i, op in input.result.patch
	op.path == "/metadata/annotations"
	masked := masked_annotations(op.value)
	masked != op.value
}

# ... or one annotation (the key is the op path's last token, RFC 6901-escaped there).
mask contains {"op": "upsert", "path": sprintf("/result/patch/%d/value", [i]), "value": redacted} if {
	some i, op in input.result.patch
	startswith(op.path, "/metadata/annotations/")
	"value" in object.keys(op)
	key := replace(replace(substring(op.path, 22, -1), "~1", "/"), "~0", "~")
	credential(key, op.value)
}

# Where the event holds pods, as [JSON pointer, pod]: the hook's input.pod; in an admission review, the
# object and oldObject (a pod, or a workload with its annotations) and the pod template a workload carries.
pods contains ["/input/pod", input.input.pod]

pods contains [sprintf("/input/request/%s", [side]), review] if {
	some side in review_sides
	review := input.input.request[side]
}

pods contains [sprintf("/input/request/%s/spec/template", [side]), template] if {
	some side in review_sides
	template := input.input.request[side].spec.template
}

pods contains [sprintf("/input/request/%s/spec/jobTemplate/spec/template", [side]), template] if {
	some side in review_sides
	template := input.input.request[side].spec.jobTemplate.spec.template
}

review_sides := ["object", "oldObject"]

admission_patch_secret(op) if regex.match(`/(containers|initContainers|ephemeralContainers)/[^/]+/env(/|$)`, op.path)

admission_patch_secret(op) if {
	walk(op.value, [path, leaf])
	secret_leaf(path, leaf)
}

admission_patch_secret(op) if regex.match(concat("|", [secret_key, "bearer", "basic"]), json.marshal(op.value))

# [..., "env", j, "value"]: an env var's value.
secret_leaf(path, leaf) if {
	n := count(path)
	n >= 3
	path[n - 3] == "env"
	is_number(path[n - 2])
	path[n - 1] == "value"
	is_string(leaf)
}

# [..., "httpHeaders", j, "value"]: a header's value.
secret_leaf(path, _) if {
	n := count(path)
	n >= 3
	path[n - 3] == "httpHeaders"
	is_number(path[n - 2])
	path[n - 1] == "value"
}

# A quick test of all the values the patch writes at once: can any of them hold a secret flag or
# a credential annotation? Usually not, and then the rules above that need it are skipped (not the
# one for a single annotation, whose key is in the op's path).
patch_suspect if {
	values := [op.value | some op in input.result.patch]
	regex.match(concat("|", [secret_key, "bearer", "basic"]), json.marshal(values))
}

# Upserts for a program at pointer `at`: its command then args as one argument vector, the way
# Kubernetes runs them, so a flag ending command takes its value from the start of args.
program_masks(at, program) := {{"op": "upsert", "path": argument_pointer(at, command, k), "value": value} |
	command := array_at(program, "command")
	vector := array.concat(command, array_at(program, "args"))
	some k in changeable(vector)
	value := masked_arg(vector, k)
}

# Upserts for a list of arguments at pointer `at` (a patch op's value).
vector_masks(at, list) := {{"op": "upsert", "path": sprintf("%s/%d", [at, k]), "value": value} |
	some k in changeable(list)
	value := masked_arg(list, k)
}

# Only an argument holding a secret word, and the one after it, can change: the others are not
# looked at further (the mask runs on every decision).
changeable(vector) := {k |
	some j, arg in vector
	is_string(arg)
	regex.match(secret_word, arg)
	some k in [j, j + 1]
	k < count(vector)
}

runs(program) if is_array(program.command)

runs(program) if is_array(program.args)

array_at(obj, key) := value if {
	value := obj[key]
	is_array(value)
} else := []

argument_pointer(at, command, k) := sprintf("%s/command/%d", [at, k]) if k < count(command)

argument_pointer(at, command, k) := sprintf("%s/args/%d", [at, k - count(command)]) if k >= count(command)

# ["--password", "x"]: the value is the next argument, whatever it is.
masked_arg(args, k) := redacted if {
	k > 0
	flag_alone(args[k - 1])
} else := masked if {
	# "--password=x", "--token x": the flag stays, what follows "=" or the first space goes.
	masked := flag_with_value(args[k])
} else := masked if {
	# "dbt run --token x": each secret flag's value inside a shell line.
	is_string(args[k])
	masked := regex.replace(args[k], inline_flag, "${1}${2}${3}<redacted>")
	masked != args[k]
}

flag_alone(arg) if {
	is_string(arg)
	startswith(arg, "-")
	not regex.match(`[=\t\n\v\f\r ]`, arg)
	secret_name(arg)
}

flag_with_value(arg) := concat("", [substring(arg, 0, i + 1), redacted]) if {
	is_string(arg)
	startswith(arg, "-")
	[separator] := regex.find_n(`[=\t\n\v\f\r ]`, arg, 1)
	i := indexof(arg, separator)
	secret_name(substring(arg, 0, i))
}

# Any secret word, in any case, "_" or "-" inside it: a quick test before the exact ones.
# Literals, built once here (mask_test.rego checks them against secret_words).
secret_word := `(?i)json[-_]string|password|passwd|secret|token|api[-_]key|apikey|auth|credential|private[-_]key|access[-_]key|conn[-_]uri|conn[-_]extra|conn[-_]json|dsn`

# A secret flag after a space, "=" or spaces, and its value: a quoted string or a word.
inline_flag := `(?i)([\t\n\v\f\r ])(-{1,2}[a-z0-9_.-]*(?:json[-_]string|password|passwd|secret|token|api[-_]key|apikey|auth|credential|private[-_]key|access[-_]key|conn[-_]uri|conn[-_]extra|conn[-_]json|dsn)[a-z0-9_.-]*)(=|[\t\n\v\f\r ]+)("[^"]*"|'[^']*'|[^\t\n\v\f\r ]+)`

secret_name(name) if regex.match(secret_word, name)

secret_key := concat("|", [secret_word, "last-applied-configuration"])

masked_annotations(annotations) := {key: masked_annotation(key, value) | some key, value in annotations} if {
	is_object(annotations)
}

masked_annotation(key, value) := redacted if credential(key, value)

else := value

# A quick test of all keys at once, then of all values: could one of them be a credential?
suspect_annotations(annotations) if regex.match(secret_key, concat("\n", object.keys(annotations)))

suspect_annotations(annotations) if {
	values := concat("\n", [value | some value in annotations; is_string(value)])
	regex.match(`(?im)^\s*(authorization:\s*)?(bearer|basic)\s+\S`, values)
}

# A secret word in the key, or kubectl's copy of the whole object (env values included) ...
credential(key, _) if regex.match(secret_key, key)

# ... or a bearer or basic credential in the value, whatever the key.

credential(_, value) if {
	is_string(value)
	regex.match(`^(?i)\s*(authorization:\s*)?(bearer|basic)\s+\S`, value)
}

# OPA reads each token literally (no "~1" decoding): the keys on these paths are field names.
pointer(path) := concat("", [concat("/", ["", token(p)]) | some p in path])

token(p) := p if is_string(p)

token(p) := format_int(p, 10) if is_number(p)
