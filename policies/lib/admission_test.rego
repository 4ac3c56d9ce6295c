package airflow.pod.lib.admission_test

import data.airflow.pod.admission
import data.airflow.pod.decision
import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.env_injection

# AdmissionReviews shaped as kube-apiserver v1.34.2 sends them (captured from
# the real server; tests/kube/test_webhook.py sends real ones).

_admin := {"username": "aom-admin", "uid": "aom-admin", "groups": ["system:masters", "system:authenticated"]}

_scheduler := {"username": "system:serviceaccount:airflow:airflow-scheduler", "groups": ["system:serviceaccounts"]}

review(group, resource, sub, operation, obj) := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"request": {
		"uid": "6f2d0c1e-0000-4000-8000-000000000001",
		"kind": {"group": group, "version": "v1", "kind": obj.kind},
		"resource": {"group": group, "version": "v1", "resource": resource},
		"subResource": sub,
		"namespace": "airflow",
		"operation": operation,
		"userInfo": _admin,
		"object": obj,
		"dryRun": false,
	},
}

pod_review(pod) := json.remove(review("", "pods", "", "CREATE", pod), ["request/subResource"])

as_user(r, user) := json.patch(r, [{"op": "replace", "path": "/request/userInfo", "value": user}])

_uid := "6f2d0c1e-0000-4000-8000-000000000001"

_decoded(answer) := json.unmarshal(base64.decode(answer.response.patch))

_without_policy(ops) := [object.remove(op, ["policy"]) | some op in ops]

_audit(policies) := json.marshal({"layer": "admission", "policies": policies, "request_uid": _uid})

# The webhooks' answers to review r under configuration delta config.
_mutate(r, config) := answer if {
	# regal ignore:external-reference,with-outside-test-context
	answer := admission.mutate with input as r with data.airflow.pod.lib.config.user as config
}

_validate(r) := answer if {
	# regal ignore:external-reference,with-outside-test-context
	answer := admission.validate with input as r
}

_privileged := fx.put(fx.worker_pod, "/spec/containers/0/securityContext", {"privileged": true})

# --- pods ---------------------------------------------------------------------

test_a_pod_gets_the_hooks_patch_and_the_audit_record if {
	answer := admission.mutate with input as pod_review(fx.worker_pod)
	answer.apiVersion == "admission.k8s.io/v1"
	answer.kind == "AdmissionReview"
	answer.response.uid == _uid
	answer.response.allowed == true
	answer.response.patchType == "JSONPatch"
	not answer.response.warnings
	judged := admission.judged with input as pod_review(fx.worker_pod)
	d := decision with input as judged
	policies := ["pod_security_context", "security_context", "service_account_token"]
	audit := {"op": "add", "path": "/metadata/annotations/airflow-opa-mutation~1decision", "value": _audit(policies)}
	_decoded(answer) == array.concat(_without_policy(d.patch), [audit])
	patched := json.patch(fx.worker_pod, _decoded(answer))
	object.remove(patched, ["metadata"]) == object.remove(fx.hardened_pod, ["metadata"])
}

test_a_pod_without_annotations_gets_the_map if {
	answer := admission.mutate with input as pod_review(fx.kpo_pod)
	ops := _decoded(answer)
	policies := ["pod_security_context", "security_context", "service_account_token"]
	annotations := {admission.audit_annotation: _audit(policies)}
	ops[count(ops) - 1] == {"op": "add", "path": "/metadata/annotations", "value": annotations}
}

test_a_converged_pod_gets_no_patch if {
	answer := admission.mutate with input as pod_review(fx.hardened_pod)
	answer.response == {"uid": _uid, "allowed": true}
	admission.patch == [] with input as pod_review(fx.hardened_pod)
}

test_a_denied_pod_is_refused_with_the_policies_messages if {
	answer := admission.mutate with input as pod_review(_privileged)
	answer.response.allowed == false
	answer.response.status.code == 403
	answer.response.status.message == concat("", [
		`denied by policy: [deny_privileged] container "base" is privileged; [pod_security] violates PodSecurity `,
		`"baseline:latest": privileged (container "base" must not set securityContext.privileged=true)`,
	])
	not answer.response.patch
}

test_warnings_are_the_warn_messages if {
	pod := fx.put(fx.hardened_pod, "/spec/containers/0/image", "apache/airflow:latest")
	answer := admission.mutate with input as pod_review(pod)
	answer.response.allowed == true
	count(answer.response.warnings) > 0
	every w in answer.response.warnings {
		startswith(w, "[image_tag] ")
	}
}

test_the_namespace_comes_from_the_request if {
	pod := json.remove(fx.hardened_pod, ["metadata/namespace"])
	admission.pod.metadata.namespace == "airflow" with input as pod_review(pod)
}

test_what_is_not_judged_is_allowed_unchanged if {
	requests := [
		review("", "pods", "", "DELETE", fx.worker_pod),
		review("", "pods", "status", "UPDATE", fx.worker_pod),
		review("", "configmaps", "", "CREATE", {"kind": "ConfigMap", "data": {}}),
		review("batch", "jobs", "", "UPDATE", _job(fx.worker_pod)),
		{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
	]
	every r in requests {
		answer := admission.mutate with input as r
		answer.response.allowed == true
		not answer.response.patch
		not admission.pod with input as r
		_validate(r).response.allowed
	}
}

test_an_object_without_its_template_is_not_judged if {
	r := review("apps", "deployments", "", "CREATE", {"kind": "Deployment", "spec": {}})
	_mutate(r, {}).response == {"uid": _uid, "allowed": true}
}

# --- ephemeral containers -------------------------------------------------------

_debugged(pod, context) := fx.put(pod, "/spec/ephemeralContainers", [{
	"name": "debug",
	"image": "busybox:1.36",
	"targetContainerName": "base",
	"securityContext": context,
}])

test_an_ephemeral_container_is_judged_and_never_patched if {
	refused := review("", "pods", "ephemeralcontainers", "UPDATE", _debugged(fx.worker_pod, {"privileged": true}))
	answer := admission.mutate with input as refused
	answer.response.allowed == false
	contains(answer.response.status.message, `[deny_privileged] ephemeralContainer "debug" is privileged`)

	# the worker pod is not hardened: a patch would be proposed, and dropped
	allowed := review("", "pods", "ephemeralcontainers", "UPDATE", _debugged(fx.hardened_pod, fx.hardened_context))
	_mutate(allowed, {}).response == {"uid": _uid, "allowed": true}
	unhardened := review("", "pods", "ephemeralcontainers", "UPDATE", _debugged(fx.worker_pod, fx.hardened_context))
	not _mutate(unhardened, {}).response.patch
}

# --- pod updates ---------------------------------------------------------------------

# A plain pod UPDATE (PUT or PATCH of the pod): the API server sends the stored
# pod as oldObject and no subResource.
_update(old, new) := json.patch(
	json.remove(review("", "pods", "", "UPDATE", new), ["request/subResource"]),
	[{"op": "add", "path": "/request/oldObject", "value": old}],
)

_labelled(pod) := fx.put(pod, "/metadata/labels/finished", "true")

_registries := {"policies": {"allowed_registries": {"enabled": true, "params": {"registries": ["docker.io/apache"]}}}}

test_an_update_adding_a_violation_is_refused if {
	privileged := fx.put(fx.hardened_pod, "/spec/containers/0/securityContext/privileged", true)
	answer := _mutate(_update(fx.hardened_pod, privileged), {})
	answer.response.allowed == false
	contains(answer.response.status.message, `denied by policy: [deny_privileged] container "base" is privileged`)
}

test_an_image_changed_to_a_refused_registry_is_refused_with_the_policys_message if {
	r := _update(fx.hardened_pod, fx.put(fx.hardened_pod, "/spec/containers/0/image", "evil.example.net/payload:1"))
	answer := _mutate(r, _registries)
	answer.response.allowed == false
	msg := concat("", [
		`[allowed_registries] container "base" uses image "evil.example.net/payload:1" `,
		"(evil.example.net/payload), which is not from an allowed registry",
	])
	contains(answer.response.status.message, msg)

	# the same pod, unchanged but for a label: its image is allowed, so is the update
	_mutate(_update(fx.hardened_pod, _labelled(fx.hardened_pod)), _registries).response == {"uid": _uid, "allowed": true}
}

test_a_label_update_of_a_pod_with_an_old_violation_is_allowed if {
	# admitted under an older policy revision, or by a trusted requester
	answer := _mutate(_update(_privileged, _labelled(_privileged)), {})
	answer.response.allowed == true
	not answer.response.patch
	_validate(_update(_privileged, _labelled(_privileged))).response.allowed == true
}

_exempt_etl := {
	"exempt": {"etl": {"dag_id": "etl_*"}},
	"admission": {"trusted_requesters": [{"username": _scheduler.username}]},
}

test_a_label_update_adding_a_violation_is_refused if {
	# the scheduler's exempted privileged pod; its new dag_id is not exempt: the violation is new
	renamed := fx.put(_privileged, "/metadata/annotations/dag_id", "reporting")
	answer := _mutate(as_user(_update(_privileged, renamed), _scheduler), _exempt_etl)
	answer.response.allowed == false
	contains(answer.response.status.message, `[deny_privileged] container "base" is privileged`)
	_mutate(as_user(_update(_privileged, _labelled(_privileged)), _scheduler), _exempt_etl).response.allowed == true
}

test_a_spec_change_of_a_pod_with_an_old_violation_is_judged_in_full if {
	# its image, deadline or tolerations change: the pod is judged as at creation
	changed := fx.put(_privileged, "/spec/activeDeadlineSeconds", 60)
	answer := _validate(_update(_privileged, changed))
	answer.response.allowed == false
	contains(answer.response.status.message, `[deny_privileged] container "base" is privileged`)
}

test_an_update_without_the_stored_pod_is_judged_in_full if {
	r := json.remove(_update(_privileged, _labelled(_privileged)), ["request/oldObject"])
	_validate(r).response.allowed == false
	_validate(json.patch(r, [{"op": "add", "path": "/request/oldObject", "value": null}])).response.allowed == false
}

test_an_update_is_never_patched if {
	# the worker pod is not hardened: a patch would be proposed at creation
	r := _update(fx.worker_pod, _labelled(fx.worker_pod))
	_mutate(r, {}).response == {"uid": _uid, "allowed": true}
	admission.patch == [] with input as r
}

# --- pod templates ----------------------------------------------------------------

_template(pod) := {"metadata": pod.metadata, "spec": pod.spec}

_job(pod) := {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": _template(pod)}}

_cronjob(pod) := {
	"apiVersion": "batch/v1",
	"kind": "CronJob",
	"metadata": {"name": "c"},
	"spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": _template(pod)}}},
}

_apps(kind, pod) := {
	"apiVersion": "apps/v1",
	"kind": kind,
	"metadata": {"name": "a"},
	"spec": {"template": _template(pod)},
}

_controllers(pod) := [
	[review("batch", "jobs", "", "CREATE", _job(pod)), "/spec/template"],
	[review("batch", "cronjobs", "", "CREATE", _cronjob(pod)), "/spec/jobTemplate/spec/template"],
	[review("batch", "cronjobs", "", "UPDATE", _cronjob(pod)), "/spec/jobTemplate/spec/template"],
	[review("apps", "deployments", "", "CREATE", _apps("Deployment", pod)), "/spec/template"],
	[review("apps", "deployments", "", "UPDATE", _apps("Deployment", pod)), "/spec/template"],
	[review("apps", "statefulsets", "", "CREATE", _apps("StatefulSet", pod)), "/spec/template"],
	[review("apps", "replicasets", "", "CREATE", _apps("ReplicaSet", pod)), "/spec/template"],
	[review("apps", "daemonsets", "", "CREATE", _apps("DaemonSet", pod)), "/spec/template"],
]

test_a_template_is_judged_as_a_pod_and_patched_where_it_is if {
	pod := json.remove(fx.worker_pod, ["metadata/name", "metadata/namespace"])
	hardened := json.remove(fx.hardened_pod, ["metadata/name", "metadata/namespace"])
	every pair in _controllers(pod) {
		[r, root] := pair
		admission.root == root with input as r
		admission.pod == json.patch(pod, [{"op": "add", "path": "/metadata/namespace", "value": "airflow"}]) with input as r
		answer := admission.mutate with input as r
		answer.response.allowed
		patched := json.patch(r.request.object, _decoded(answer))
		object.get(patched, array.slice(split(root, "/"), 1, 10), null) == _template(json.patch(hardened, [{
			"op": "add", "path": "/metadata/annotations/airflow-opa-mutation~1decision",
			"value": _audit(["pod_security_context", "security_context", "service_account_token"]),
		}]))
	}
}

test_a_template_is_denied_on_its_controller if {
	every pair in _controllers(_privileged) {
		[r, root] := pair
		answer := admission.mutate with input as r
		answer.response.allowed == false
		startswith(answer.response.status.message, sprintf(
			`the pod template (%s) is denied by policy: [deny_privileged] container "base" is privileged; `,
			[replace(trim_prefix(root, "/"), "/", ".")],
		))
	}
}

test_a_move_is_rerooted_whole if {
	r := review("apps", "deployments", "", "CREATE", _apps("Deployment", fx.hardened_pod))
	ops := _decoded(admission.mutate) with input as r
		with data.airflow.pod.lib.config.user as fx.enable("env_injection", {})
		with env_injection.patch as [{"op": "move", "from": "/spec/serviceAccountName", "path": "/spec/hostname"}]
	ops[0] == {"op": "move", "from": "/spec/template/spec/serviceAccountName", "path": "/spec/template/spec/hostname"}
}

test_a_request_without_a_namespace_keeps_the_pods if {
	r := json.remove(pod_review(fx.hardened_pod), ["request/namespace"])
	admission.pod == fx.hardened_pod with input as r
}

test_a_template_without_metadata_gets_it_first if {
	r := review("batch", "jobs", "", "CREATE", json.remove(_job(fx.worker_pod), ["spec/template/metadata"]))
	ops := _decoded(_mutate(r, {}))
	ops[0] == {"op": "add", "path": "/spec/template/metadata", "value": {}}
	json.patch(r.request.object, ops).spec.template.metadata.annotations[admission.audit_annotation]
}

# --- the validating webhook -------------------------------------------------------

test_validate_denies_as_mutate_does_and_never_patches if {
	refused := admission.validate with input as pod_review(_privileged)
	refused.response == _mutate(pod_review(_privileged), {}).response
	clean := admission.validate with input as pod_review(fx.hardened_pod)
	clean.response == {"uid": _uid, "allowed": true}
}

test_validate_warns_about_an_unconverged_object if {
	answer := admission.validate with input as pod_review(fx.worker_pod)
	answer.response.allowed
	not answer.response.patch
	policies := "pod_security_context, security_context, service_account_token"
	msg := sprintf("not mutated at admission: the policies %s would still change this object", [policies])
	answer.response.warnings == [msg]
}

# --- input.request and input.airflow ------------------------------------------------

test_the_request_is_described if {
	admission.request == {
		"uid": _uid, "mode": "enforce", "layer": "admission", "operation": "CREATE",
		"namespace": "airflow", "userInfo": _admin, "dryRun": false,
	} with input as pod_review(fx.worker_pod)
	dry := json.patch(pod_review(fx.worker_pod), [{"op": "replace", "path": "/request/dryRun", "value": true}])
	admission.request.dryRun with input as dry
}

test_ids_come_from_annotations_before_labels_and_are_untrusted if {
	admission.airflow == {
		"dag_id": "etl_daily",
		"task_id": "load_warehouse",
		"run_id": "scheduled__2026-11-24T00:00:00+00:00",
		"try_number": 1,
		"map_index": -1,
		"launcher": "kubernetes_executor",
		"untrusted": ["dag_id", "task_id", "run_id", "try_number", "map_index", "launcher"],
	} with input as pod_review(fx.worker_pod)
	admission.airflow.launcher == "kubernetes_pod_operator" with input as pod_review(fx.kpo_pod)
}

test_a_pod_without_ids_claims_nothing if {
	pod := {"kind": "Pod", "metadata": {"name": "bare"}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
	admission.airflow == {"launcher": "unknown"} with input as pod_review(pod)
	labelled := fx.put(pod, "/metadata/labels", {"dag_id": "x", "kubernetes_executor": "no"})
	admission.airflow == {"dag_id": "x", "launcher": "unknown", "untrusted": ["dag_id"]} with input as pod_review(labelled)
}

test_integer_ids_parse_as_python_does if {
	cases := {
		"3": 3, " 7 ": 7, "+4": 4, "-1": -1, "0012": 12, "-0": 0, "00": 0, "1_000": 1000,
		"1__0": null, "_1": null, "1.0": null, "x": null, "": null, "1 2": null, "--1": null,
	}
	every raw, want in cases {
		pod := fx.put(fx.kpo_pod, "/metadata/labels/try_number", raw)
		object.get(admission.airflow, "try_number", null) == want with input as pod_review(pod)
	}
}

test_an_unparsable_annotation_falls_back_to_the_label if {
	pod := fx.put(fx.worker_pod, "/metadata/annotations/try_number", "one")
	admission.airflow.try_number == 1 with input as pod_review(pod)
	empty := fx.put(fx.worker_pod, "/metadata/annotations/dag_id", "")
	admission.airflow.dag_id == "etl_daily" with input as pod_review(empty)
}

_trust(entries) := {"admission": {"trusted_requesters": entries}}

test_a_trusted_requesters_ids_are_trusted if {
	r := as_user(pod_review(fx.worker_pod), _scheduler)
	config := _trust([{"username": _scheduler.username}])
	admission.trusted_requester with input as r with data.airflow.pod.lib.config.user as config
	not admission.airflow.untrusted with input as r with data.airflow.pod.lib.config.user as config
	admission.airflow.untrusted with input as r
}

test_trust_is_an_exact_username if {
	r := as_user(pod_review(fx.worker_pod), _scheduler)
	not_trusting := [
		[{"username": "system:serviceaccount:airflow:*"}],
		[{"username": "system:serviceaccount:airflow:airflow-scheduler", "groups": ["x"]}],
		[{"groups": ["system:serviceaccounts"]}],
		[{"username": ""}],
		[{"username": 7}],
		["system:serviceaccount:airflow:airflow-scheduler"],
		{"username": "system:serviceaccount:airflow:airflow-scheduler"},
	]
	every entries in not_trusting {
		not admission.trusted_requester with input as r with data.airflow.pod.lib.config.user as _trust(entries)
	}
}

test_an_exemption_on_an_untrusted_dag_id_does_not_match if {
	config := {"exempt": {"etl": {"dag_id": "etl_*"}}}
	r := pod_review(_privileged)
	_mutate(r, config).response.allowed == false
	trusting := object.union(config, _trust([{"username": _admin.username}]))
	_mutate(r, trusting).response == {"uid": _uid, "allowed": true}
}

test_no_pod_may_run_as_a_trusted_service_account if {
	config := _trust([{"username": _scheduler.username}])
	as_scheduler := fx.put(fx.hardened_pod, "/spec/serviceAccountName", "airflow-scheduler")
	msg := concat("", [
		`denied by policy: [admission] pod runs as service account "airflow-scheduler" of namespace "airflow", `,
		"a trusted requester (admission.trusted_requesters): no judged pod may",
	])
	_mutate(pod_review(fx.hardened_pod), config).response.allowed
	every user in [_admin, _scheduler] {
		_mutate(as_user(pod_review(as_scheduler), user), config).response.status.message == msg
	}

	# the deprecated alias, and a template
	alias := json.remove(fx.put(as_scheduler, "/spec/serviceAccount", "airflow-scheduler"), ["spec/serviceAccountName"])
	_mutate(pod_review(alias), config).response.allowed == false
	job := review("batch", "jobs", "", "CREATE", _job(as_scheduler))
	_mutate(job, config).response.allowed == false

	# elsewhere, or another account: allowed
	other := json.patch(pod_review(as_scheduler), [{"op": "replace", "path": "/request/namespace", "value": "tasks"}])
	_mutate(other, config).response.allowed
}

test_trusting_a_default_account_refuses_every_pod_without_one if {
	config := _trust([{"username": "system:serviceaccount:airflow:default"}])
	bare := json.remove(fx.hardened_pod, ["spec/serviceAccountName"])
	_mutate(pod_review(bare), config).response.allowed == false
}
