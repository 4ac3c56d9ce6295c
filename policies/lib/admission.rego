# METADATA
# title: The cluster backstop - the hook's decision as a Kubernetes admission webhook
# description: |
#   OPA serves an admission.k8s.io/v1 AdmissionReview, exactly as the
#   kube-apiserver sends it, at POST /v0/data/airflow/pod/admission/mutate
#   (the MutatingWebhookConfiguration) and .../validate (the
#   ValidatingWebhookConfiguration): /v0 takes the request body as input and
#   answers with the document itself. The answer is an AdmissionReview whose
#   response carries the hook's decision, made by the same framework with
#   the same configuration (data.airflow.pod.config): the patch (JSONPatch,
#   base64), the deny messages (allowed false) and the warn messages.
#
#   Judged: pods on CREATE, pods on UPDATE (validated, never patched: a spec
#   change in full, a metadata-only one for what it newly violates), the
#   whole pod on UPDATE of pods/ephemeralcontainers (kubectl debug), and the
#   pod templates of Jobs, CronJobs, Deployments, StatefulSets, ReplicaSets
#   and DaemonSets, built into a pod, patched where the template is and
#   denied on the controller. Anything else is allowed
#   unchanged. README.md, "Admission backstop"; docs/threat-model.md.
# scope: package
package airflow.pod.admission

import data.airflow.pod.lib.config
import data.airflow.pod.lib.framework

# The hook's audit annotation (hook/airflow_opa_mutation/_audit.py), as a
# JSON-pointer token: the admission layer writes its own record there.
audit_annotation := "airflow-opa-mutation/decision"

_audit_token := "airflow-opa-mutation~1decision"

_request := object.get(input, "request", {})

# --- what is judged ----------------------------------------------------------

# [group, resource, subResource] -> the operations judged, where the pod (or
# its template) is in the object, and the operations the patch can change it
# on. A running pod's spec is immutable but for its images, deadline and added
# tolerations: an UPDATE is judged (the images could be swapped for refused
# ones), never patched. The ephemeralcontainers subresource keeps only
# spec.ephemeralContainers of what mutating webhooks return, and the library
# never writes there: judged, never patched. A Job's template is immutable
# once created: CREATE only.
_targets := {
	["", "pods", ""]: {"operations": {"CREATE", "UPDATE"}, "place": [], "patch": {"CREATE"}},
	["", "pods", "ephemeralcontainers"]: {"operations": {"UPDATE"}, "place": [], "patch": set()},
	["batch", "jobs", ""]: {"operations": {"CREATE"}, "place": ["spec", "template"], "patch": {"CREATE"}},
	["batch", "cronjobs", ""]: {
		"operations": {"CREATE", "UPDATE"},
		"place": ["spec", "jobTemplate", "spec", "template"],
		"patch": {"CREATE", "UPDATE"},
	},
	["apps", "deployments", ""]: _template_target,
	["apps", "statefulsets", ""]: _template_target,
	["apps", "replicasets", ""]: _template_target,
	["apps", "daemonsets", ""]: _template_target,
}

_template_target := {"operations": {"CREATE", "UPDATE"}, "place": ["spec", "template"], "patch": {"CREATE", "UPDATE"}}

_resource := [
	object.get(_request, ["resource", "group"], ""),
	object.get(_request, ["resource", "resource"], ""),
	object.get(_request, "subResource", ""),
]

_target := target if {
	target := _targets[_resource]
	_request.operation in target.operations
}

# The pod or pod template the request carries.
_source := source if {
	source := object.get(_request.object, _target.place, null)
	is_object(source)
}

# METADATA
# title: Where the judged pod is
# description: |
#   The JSON pointer of the pod in the request's object: "" for a pod,
#   "/spec/template" (or the CronJob's "/spec/jobTemplate/spec/template") for
#   a pod template. The patch is re-rooted there.
# scope: document
default root := ""

root := concat("", ["/", concat("/", _target.place)]) if count(_target.place) > 0

# The namespace the pod runs in: the request's (a template has none of its own).
_namespace := object.get(_request, "namespace", "")

_metadata := object.union(object.get(_source, "metadata", {}), {"namespace": _namespace}) if {
	is_string(_namespace)
	_namespace != ""
} else := object.get(_source, "metadata", {})

# METADATA
# title: The judged pod
# description: |
#   The pod itself, or a pod built from the template (its metadata, with the
#   request's namespace, and its spec). Undefined when the request is not judged.
pod := object.union(_source, {"metadata": _metadata}) if {
	_source
	root == ""
} else := {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata, "spec": object.get(_source, "spec", {})} if {
	_source
}

# --- input.request -----------------------------------------------------------

# METADATA
# title: input.request at admission
# description: |
#   What the hook sends ({"uid", "mode"}) plus what the API server says about
#   the request: the operation, namespace, userInfo (set by the API server's
#   authentication; nothing in the object can change it) and dryRun.
request := {
	"uid": object.get(_request, "uid", ""),
	"mode": "enforce",
	"layer": "admission",
	"operation": object.get(_request, "operation", ""),
	"namespace": _namespace,
	"userInfo": object.get(_request, "userInfo", {}),
	"dryRun": object.get(_request, "dryRun", false) == true,
}

# --- input.airflow: the ids the pod states, trusted only for trusted requesters --

_labels := object.get(pod, ["metadata", "labels"], {})

_annotations := object.get(pod, ["metadata", "annotations"], {})

_text_ids := ["dag_id", "task_id", "run_id"]

_int_ids := ["try_number", "map_index"]

# The ids as the pod states them, exactly as the hook reads them when Airflow
# confirms nothing (_airflow_context.py): annotations before labels, text ids
# non-empty, integer ids parsed (ASCII digits).
_ids[key] := value if {
	some key in _text_ids
	value := _text(object.get(_annotations, key, null), object.get(_labels, key, null))
}

_ids[key] := value if {
	some key in _int_ids
	value := _int(object.get(_annotations, key, null), object.get(_labels, key, null))
}

_text(annotation, label) := annotation if {
	annotation != ""
	is_string(annotation)
} else := label if {
	label != ""
	is_string(label)
}

_int(annotation, label) := _as_int(annotation) if {
	_as_int(annotation)
} else := _as_int(label)

# Python's int(value.strip()) for ASCII digits: sign, digits, "_" between digits.
_as_int(raw) := to_number(concat("", [sign, digits])) if {
	is_string(raw)
	text := trim_space(raw)
	regex.match(`^[+-]?[0-9]+(_[0-9]+)*$`, text)
	stripped := trim_left(strings.replace_n({"_": "", "+": "", "-": ""}, text), "0")
	digits := _zero_if_empty(stripped)
	sign := _sign(text, digits)
}

_zero_if_empty("") := "0"

_zero_if_empty(s) := s if s != ""

_sign(text, digits) := "-" if {
	startswith(text, "-")
	digits != "0"
} else := ""

default _launcher := "unknown"

_launcher := "kubernetes_pod_operator" if {
	lower(object.get(_labels, "kubernetes_pod_operator", "")) == "true"
} else := "kubernetes_executor" if {
	lower(object.get(_labels, "kubernetes_executor", "")) == "true"
}

_claimed_ids := [key | some key in array.concat(_text_ids, _int_ids); _ids[key]]

# The ids the pod claims, in the hook's order, and the launcher unless unknown.
_claimed := _claimed_ids if {
	_launcher == "unknown"
} else := array.concat(_claimed_ids, ["launcher"])

# METADATA
# title: input.airflow at admission
# description: |
#   The Airflow ids read from the pod's annotations and labels, which the DAG
#   author writes: all listed in `untrusted` (the library's matchers never
#   match them), unless the requester is trusted.
airflow := object.union(_ids, {"launcher": _launcher}) if {
	trusted_requester
} else := object.union(_ids, {"launcher": _launcher, "untrusted": _claimed}) if {
	count(_claimed) > 0
} else := object.union(_ids, {"launcher": _launcher})

# --- trusted requesters --------------------------------------------------------

# data.airflow.pod.config.admission.trusted_requesters: [{"username": "..."}].
# Exact usernames, as the API server authenticated them: no globs, no groups
# (system:serviceaccounts:<namespace> holds the workers too). An entry with any
# other key, or a non-string username, never matches.
_trusted_requesters := [entry |
	some entry in object.get(config.user, ["admission", "trusted_requesters"], [])
	is_object(entry)
	object.keys(entry) == {"username"}
	is_string(entry.username)
	entry.username != ""
]

# METADATA
# title: The requester is trusted
# description: |
#   request.userInfo.username is one of the configuration's
#   admission.trusted_requesters: the pod's ids are then taken as Airflow's
#   (as the hook takes the scheduler's).
trusted_requester if {
	some entry in _trusted_requesters
	entry.username == request.userInfo.username
}

# The service accounts among the trusted requesters, as [namespace, name].
_trusted_accounts contains [parts[2], parts[3]] if {
	some entry in _trusted_requesters
	parts := split(entry.username, ":")
	count(parts) == 4
	parts[0] == "system"
	parts[1] == "serviceaccount"
}

# The service accounts the pod runs as (serviceAccountName, its deprecated
# alias serviceAccount; neither: "default").
_accounts contains name if {
	some field in ["serviceAccountName", "serviceAccount"]
	name := pod.spec[field]
	is_string(name)
	name != ""
}

default _pod_accounts := {"default"}

_pod_accounts := _accounts if count(_accounts) > 0

# Trust cannot be obtained through the object: a pod that would run as a
# trusted service account (whose token it could then use) is refused,
# whoever asks.
_guard contains msg if {
	some name in _pod_accounts
	[_namespace, name] in _trusted_accounts
	msg := sprintf(
		"pod runs as service account %q of namespace %q, %s",
		[name, _namespace, "a trusted requester (admission.trusted_requesters): no judged pod may"],
	)
}

# --- the decision --------------------------------------------------------------

# METADATA
# title: The input the decision is made on
# description: '{"pod", "airflow", "request"}: the same shape as the hook''s input.'
judged := {"pod": pod, "airflow": airflow, "request": request}

# The hook's decision (data.airflow.pod.decision is these three rules) on the
# judged input, and the pod its patch makes.
_decision := decision if {
	# regal ignore:with-outside-test-context
	decision := _parts with input as judged
}

_parts := {
	"patch": framework.patch,
	"deny": framework.deny,
	"warn": framework.warn,
	"pod": framework.patched_pod,
}

# The decision's deny entries, then the trusted-account guard's (policy "admission").
_denied := array.concat(_decision.deny, [{"msg": msg, "policy": "admission"} | some msg in _guard])

# A pod UPDATE: the stored pod (oldObject) is judged too, as the same requester.
_pod_update if {
	_resource == ["", "pods", ""]
	_request.operation == "UPDATE"
}

# The stored pod; none sent: {}, whose spec every pod's differs from (judged in full).
default _old := {}

_old := old if {
	old := _request.oldObject
	is_object(old)
}

_old_denied := denied if {
	# regal ignore:with-outside-test-context
	denied := _denied with input.request.object as _old
}

# A spec change (image, deadline, tolerations) is judged in full, as at
# creation: the stored pod's violations were admitted for its own containers
# (an older policy revision, a trusted requester's exemption), never for
# another image.
_spec_changed if object.get(_request.object, "spec", {}) != object.get(_old, "spec", {})

# METADATA
# title: Deny entries
# description: |
#   [{"msg", "policy"}]: the decision's, then the trusted-account guard's
#   (policy "admission"). On a pod UPDATE that leaves the spec as stored
#   (labels, annotations: the KubernetesPodOperator labels its finished pods),
#   only the entries the stored pod does not have: an update adds no
#   violation, and a pod admitted under an older policy revision or for a
#   trusted requester is not bricked.
# scope: document
default deny := []

deny := [entry | some entry in _denied; not entry in _old_denied] if {
	_pod_update
	not _spec_changed
} else := _denied

# METADATA
# title: Warn entries
# description: '[{"msg", "policy"}]: the decision''s.'
# scope: document
default warn := []

warn := _decision.warn

# The decision's operations, re-rooted at the pod's place, without "policy".
_rerooted := [_reroot(op) | some op in _decision.patch]

_reroot(op) := object.union(object.remove(op, ["policy", "path", "from"]), _pointers(op))

_pointers(op) := {"path": concat("", [root, op.path]), "from": concat("", [root, op.from])} if {
	is_string(op.from)
} else := {"path": concat("", [root, op.path])}

# Policies that changed the object, in decision order (the hook's record lists
# them the same way).
_policies := [op.policy | some i, op in _decision.patch; not _seen_before(i, op.policy)]

_seen_before(i, name) if {
	some j, earlier in _decision.patch
	j < i
	earlier.policy == name
}

_record := json.marshal({"layer": "admission", "policies": _policies, "request_uid": request.uid})

# The audit record goes where the patched pod keeps its annotations, or in a
# new map (a template without metadata gets that first).
_audit_ops := [{"op": "add", "path": concat("", [root, "/metadata/annotations/", _audit_token]), "value": _record}] if {
	is_object(_decision.pod.metadata.annotations)
} else := [{"op": "add", "path": concat("", [root, "/metadata/annotations"]), "value": {audit_annotation: _record}}]

default _metadata_ops := []

_metadata_ops := [{"op": "add", "path": concat("", [root, "/metadata"]), "value": {}}] if {
	root != ""
	not is_object(object.get(_source, "metadata", null))
}

# METADATA
# title: The admission patch
# description: |
#   The decision's operations at the pod's place (no "policy" member), then
#   the audit record (layer "admission"); [] when the decision changes
#   nothing or the object cannot be patched.
# scope: document
default patch := []

patch := array.concat(array.concat(_metadata_ops, _rerooted), _audit_ops) if {
	_request.operation in _target.patch
	count(_rerooted) > 0
	count(deny) == 0
}

# --- the AdmissionReview answers -----------------------------------------------

_listed(entries) := concat("; ", [sprintf("[%s] %s", [e.policy, e.msg]) | some e in entries])

_denial := sprintf("denied by policy: %s", [_listed(deny)]) if {
	root == ""
} else := sprintf("the pod template (%s) is denied by policy: %s", [concat(".", _target.place), _listed(deny)])

_warnings := [sprintf("[%s] %s", [e.policy, e.msg]) | some e in warn]

_verdict := {"uid": request.uid, "allowed": true} if {
	count(deny) == 0
} else := {
	"uid": request.uid,
	"allowed": false,
	"status": {"code": 403, "reason": "Forbidden", "message": _denial},
}

_with_warnings(response, warnings) := response if {
	count(warnings) == 0
} else := object.union(response, {"warnings": warnings})

_review(response) := {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}

# METADATA
# title: The mutating webhook's answer
# description: |
#   POST /v0/data/airflow/pod/admission/mutate: the AdmissionReview with
#   response {uid, allowed, status.message when denied, warnings,
#   patchType: JSONPatch and patch (base64) when the patch is not empty}.
mutate := _review(_with_warnings(_verdict, _warnings)) if {
	count(patch) == 0
} else := _review(_with_warnings(
	object.union(_verdict, {"patchType": "JSONPatch", "patch": base64.encode(json.marshal(patch))}),
	_warnings,
))

# Judged after every mutating webhook: a pod the library would still change
# (another webhook undid a change, or the mutating webhook did not run) is
# admitted with a warning naming the policies; the mutations are defaults,
# the deny rules are the boundary.
default _unconverged := []

_unconverged := [sprintf(
	"not mutated at admission: the policies %s would still change this object",
	[concat(", ", _policies)],
)] if {
	count(_rerooted) > 0
	count(deny) == 0
}

# METADATA
# title: The validating webhook's answer
# description: |
#   POST /v0/data/airflow/pod/admission/validate: the AdmissionReview with
#   response {uid, allowed, status.message when denied, warnings}; never a patch.
validate := _review(_with_warnings(_verdict, array.concat(_warnings, _unconverged)))
