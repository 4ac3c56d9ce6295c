package airflow.pod.policies.service_account_token_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.service_account_token

_off := {"op": "add", "path": "/spec/automountServiceAccountToken", "value": false}

_replaced := {"op": "replace", "path": "/spec/automountServiceAccountToken", "value": false}

_opt_in := {"airflow-opa-mutation/automount-service-account-token": "true"}

_annotated := fx.put(fx.kpo_pod, "/metadata/annotations", _opt_in)

_explicit(pod, value) := fx.put(pod, "/spec/automountServiceAccountToken", value)

_mode(mode) := fx.params("service_account_token", {"mode": mode})

test_token_is_not_mounted_by_default if {
	service_account_token.patch == {_off} with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
}

# Issue 22, item 3: the pod's own spec no longer grants a token.
test_an_explicit_true_is_replaced_by_default if {
	pod := _explicit(fx.worker_pod, true)
	service_account_token.patch == {_replaced} with input as {"pod": pod, "airflow": fx.ke_airflow}
}

test_an_explicit_false_is_left_alone if {
	pod := _explicit(fx.worker_pod, false)
	service_account_token.patch == set() with input as {"pod": pod, "airflow": fx.ke_airflow}
}

# Issue 22, item 3: the pod's own annotation no longer grants a token, and says so.
test_the_annotation_grants_nothing_by_default if {
	service_account_token.patch == {_off} with input as {"pod": _annotated, "airflow": fx.kpo_airflow}
	msg := concat("", [
		`annotation "airflow-opa-mutation/automount-service-account-token" grants no token in mode "force_off"; `,
		"tokens are granted by the configuration (token_grants)",
	])
	service_account_token.warn == {msg} with input as {"pod": _annotated, "airflow": fx.kpo_airflow}
}

test_no_warning_without_the_annotation if {
	service_account_token.warn == set() with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
}

# mode: respect_spec keeps an explicit value, adds false where absent, ignores the annotation.
test_respect_spec_keeps_the_pods_value if {
	pod := _explicit(fx.worker_pod, true)
	service_account_token.patch == set() with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _mode("respect_spec")
	service_account_token.patch == {_off} with input as {"pod": _annotated}
		with data.airflow.pod.lib.config.user as _mode("respect_spec")
}

# mode: annotation is the behaviour before issue 22: the annotation or an explicit value.
test_annotation_mode_opts_in_by_annotation if {
	service_account_token.opted_in with input as {"pod": _annotated}
	service_account_token.patch == set() with input as {"pod": _annotated}
		with data.airflow.pod.lib.config.user as _mode("annotation")
	service_account_token.warn == set() with input as {"pod": _annotated}
		with data.airflow.pod.lib.config.user as _mode("annotation")
	pod := _explicit(fx.worker_pod, true)
	service_account_token.patch == set() with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _mode("annotation")
	service_account_token.patch == {_off} with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as _mode("annotation")
}

test_other_annotation_values_do_not_opt_in if {
	pod := fx.put(fx.kpo_pod, "/metadata/annotations", {"airflow-opa-mutation/automount-service-account-token": "yes"})
	service_account_token.patch == {_off} with input as {"pod": pod}
		with data.airflow.pod.lib.config.user as _mode("annotation")
}

test_the_annotation_is_configurable if {
	pod := fx.put(fx.kpo_pod, "/metadata/annotations", {"example.com/needs-api": "true"})
	delta := fx.params("service_account_token", {"mode": "annotation", "opt_in_annotation": "example.com/needs-api"})
	service_account_token.patch == set() with input as {"pod": pod} with data.airflow.pod.lib.config.user as delta
}

# A mode the policy does not know turns tokens off, as force_off does, and says so.
test_an_unknown_mode_is_force_off_with_a_warning if {
	pod := _explicit(fx.worker_pod, true)
	delta := _mode("anotation")
	service_account_token.mode == "force_off" with data.airflow.pod.lib.config.user as delta
	service_account_token.patch == {_replaced} with input as {"pod": pod} with data.airflow.pod.lib.config.user as delta
	msg := `unknown mode "anotation": tokens are turned off as in mode "force_off"`
	service_account_token.warn == {msg} with input as {"pod": pod} with data.airflow.pod.lib.config.user as delta
}

# --- token grants: the KubernetesPodOperator-in-KubernetesExecutor case -----

# Workers of the DAG k8s_launch, built by the KubernetesExecutor, keep a token
# of the service account airflow-pod-launcher (and no other).
_grants := fx.params("service_account_token", {"token_grants": {"pod-launchers": {
	"match": {"launcher": "kubernetes_executor", "dag_id": "k8s_launch"},
	"service_accounts": ["airflow-pod-launcher"],
}}})

_grant(name, grant) := fx.params("service_account_token", {"token_grants": {name: grant}})

_launcher_airflow := object.union(fx.ke_airflow, {"dag_id": "k8s_launch"})

_launcher_pod := json.patch(fx.worker_pod, [
	{"op": "replace", "path": "/spec/serviceAccountName", "value": "airflow-pod-launcher"},
	{"op": "replace", "path": "/metadata/labels/dag_id", "value": "k8s_launch"},
])

test_a_grant_leaves_the_token_to_the_pod if {
	input_ := {"pod": _launcher_pod, "airflow": _launcher_airflow}
	service_account_token.granted == {"pod-launchers"} with input as input_
		with data.airflow.pod.lib.config.user as _grants
	service_account_token.patch == set() with input as input_ with data.airflow.pod.lib.config.user as _grants
	explicit := {"pod": _explicit(_launcher_pod, true), "airflow": _launcher_airflow}
	service_account_token.patch == set() with input as explicit with data.airflow.pod.lib.config.user as _grants
}

test_a_grant_does_not_reach_other_dags if {
	input_ := {"pod": _launcher_pod, "airflow": fx.ke_airflow}
	service_account_token.granted == set() with input as input_ with data.airflow.pod.lib.config.user as _grants
	service_account_token.patch == {_off} with input as input_ with data.airflow.pod.lib.config.user as _grants
}

# The grant names the account: the same task under another account gets no token.
test_a_grant_with_accounts_needs_one_of_them if {
	input_ := {"pod": fx.worker_pod, "airflow": _launcher_airflow}
	service_account_token.granted == set() with input as input_ with data.airflow.pod.lib.config.user as _grants
	no_accounts := _grant("pod-launchers", {"match": {"dag_id": "k8s_launch"}})
	service_account_token.granted == {"pod-launchers"} with input as input_
		with data.airflow.pod.lib.config.user as no_accounts
}

# A dag_id that only the pod's labels vouch for (input.airflow.untrusted) never matches.
test_a_grant_never_matches_an_untrusted_id if {
	airflow := object.union(_launcher_airflow, {"untrusted": ["dag_id", "task_id", "launcher"]})
	input_ := {"pod": _launcher_pod, "airflow": airflow}
	service_account_token.granted == set() with input as input_ with data.airflow.pod.lib.config.user as _grants
	service_account_token.patch == {_off} with input as input_ with data.airflow.pod.lib.config.user as _grants
}

# Labels and annotations are the pod author's: a grant keyed on them grants
# nothing, and so does a grant without conditions.
test_grants_on_what_the_author_writes_grant_nothing if {
	labels := _grant("by-label", {"match": {"labels": {"dag_id": "k8s_launch"}}})
	service_account_token.granted == set() with input as {"pod": _launcher_pod, "airflow": _launcher_airflow}
		with data.airflow.pod.lib.config.user as labels
	annotations := _grant("by-annotation", {"match": {"dag_id": "k8s_launch", "annotations": {"dag_id": "*"}}})
	service_account_token.granted == set() with input as {"pod": _launcher_pod, "airflow": _launcher_airflow}
		with data.airflow.pod.lib.config.user as annotations
	empty := fx.params("service_account_token", {"token_grants": {"everyone": {"match": {}}, "nothing": {}}})
	service_account_token.granted == set() with input as {"pod": _launcher_pod, "airflow": _launcher_airflow}
		with data.airflow.pod.lib.config.user as empty
}

test_a_namespace_grant if {
	delta := fx.params("service_account_token", {"token_grants": {"ml": {"match": {"namespace": "ml-jobs"}}}})
	service_account_token.patch == set() with input as {"pod": fx.kpo_pod, "airflow": fx.kpo_airflow}
		with data.airflow.pod.lib.config.user as delta
}

# --- projected tokens ----------------------------------------------------------

_projected(sources) := fx.put(fx.worker_pod, "/spec/volumes", [
	{"name": "config", "configMap": {"name": "etl"}},
	{"name": "kube-api", "projected": {"sources": sources}},
])

_token := {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 3600}}

# automountServiceAccountToken: false does not stop a token projected into a
# volume: the walk-around of issue 13.
test_a_projected_token_is_denied if {
	pod := _projected([{"configMap": {"name": "ca"}}, _token])
	msg := `volume "kube-api" projects a service account token, which is not allowed (allow_projected_token)`
	service_account_token.deny == {msg} with input as {"pod": pod}
}

# A grant leaves automount to the pod; projected tokens stay denied.
test_a_grant_does_not_allow_a_projected_token if {
	pod := object.union(_projected([_token]), {"spec": {"serviceAccountName": "airflow-pod-launcher"}})
	msg := `volume "kube-api" projects a service account token, which is not allowed (allow_projected_token)`
	service_account_token.deny == {msg} with input as {"pod": pod, "airflow": _launcher_airflow}
		with data.airflow.pod.lib.config.user as _grants
}

test_a_projected_token_is_allowed_by_the_parameter if {
	pod := _projected([_token])
	delta := fx.params("service_account_token", {"allow_projected_token": true})
	service_account_token.deny == set() with input as {"pod": pod} with data.airflow.pod.lib.config.user as delta
}

test_projected_volumes_without_a_token_pass if {
	service_account_token.deny == set() with input as {"pod": _projected([{"configMap": {"name": "ca"}}])}
	service_account_token.deny == set() with input as {"pod": _projected([{"serviceAccountToken": null}])}
	service_account_token.deny == set() with input as {"pod": fx.worker_pod}
}

# --- service accounts ------------------------------------------------------------

_accounts := fx.params("service_account_token", {"service_accounts": ["airflow-*"]})

test_service_accounts_outside_the_globs_are_denied if {
	# fx.worker_pod runs as airflow-worker
	service_account_token.deny == set() with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as _accounts
	pod := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/serviceAccountName", "value": "cluster-admin"}])
	msg := `pod runs as service account "cluster-admin", which is not allowed (service_accounts)`
	service_account_token.deny == {msg} with input as {"pod": pod} with data.airflow.pod.lib.config.user as _accounts
}

# No service account named: Kubernetes runs the pod as "default".
test_no_service_account_means_default if {
	msg := `pod runs as service account "default", which is not allowed (service_accounts)`
	service_account_token.deny == {msg} with input as {"pod": fx.kpo_pod}
		with data.airflow.pod.lib.config.user as _accounts
}

# serviceAccount is the deprecated alias: judged too, alone or beside serviceAccountName.
test_the_deprecated_alias_is_judged if {
	alone := fx.put(fx.kpo_pod, "/spec/serviceAccount", "cluster-admin")
	msg := `pod runs as service account "cluster-admin", which is not allowed (service_accounts)`
	service_account_token.deny == {msg} with input as {"pod": alone} with data.airflow.pod.lib.config.user as _accounts
	both := fx.put(fx.worker_pod, "/spec/serviceAccount", "cluster-admin")
	service_account_token.deny == {msg} with input as {"pod": both} with data.airflow.pod.lib.config.user as _accounts
}

test_every_service_account_is_allowed_by_default if {
	pod := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/serviceAccountName", "value": "cluster-admin"}])
	service_account_token.deny == set() with input as {"pod": pod}
}

# Issue 22, item 3: the scheduler's account (official chart: <fullname>-scheduler)
# is denied whatever service_accounts allows; the alias cannot walk around it.
_denied := fx.params("service_account_token", {"denied_service_accounts": ["*airflow*-scheduler"]})

test_denied_service_accounts_win_over_the_allow_list if {
	pod := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/serviceAccountName", "value": "airflow-scheduler"}])
	msg := `pod runs as service account "airflow-scheduler", which is denied (denied_service_accounts)`
	service_account_token.deny == {msg} with input as {"pod": pod} with data.airflow.pod.lib.config.user as _denied
	alias := fx.put(fx.worker_pod, "/spec/serviceAccount", "prod-airflow-scheduler")
	alias_msg := `pod runs as service account "prod-airflow-scheduler", which is denied (denied_service_accounts)`
	service_account_token.deny == {alias_msg} with input as {"pod": alias} with data.airflow.pod.lib.config.user as _denied
	service_account_token.deny == set() with input as {"pod": fx.worker_pod}
		with data.airflow.pod.lib.config.user as _denied
}

# A grant does not widen the accounts a pod may run as.
test_a_grant_cannot_name_a_denied_account if {
	delta := {"policies": {"service_account_token": {"params": {
		"denied_service_accounts": ["*airflow*-scheduler"],
		"token_grants": {"all-of-etl": {"match": {"dag_id": "etl_daily"}}},
	}}}}
	pod := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/serviceAccountName", "value": "airflow-scheduler"}])
	input_ := {"pod": pod, "airflow": fx.ke_airflow}
	service_account_token.granted == {"all-of-etl"} with input as input_ with data.airflow.pod.lib.config.user as delta
	msg := `pod runs as service account "airflow-scheduler", which is denied (denied_service_accounts)`
	service_account_token.deny == {msg} with input as input_ with data.airflow.pod.lib.config.user as delta
}

# Every parameter has a type in the schema, and nothing else does.
test_the_schema_lists_every_parameter if {
	object.keys(service_account_token.schema) == object.keys(service_account_token.defaults.params)
}
