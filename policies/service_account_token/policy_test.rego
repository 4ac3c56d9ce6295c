package airflow.pod.policies.service_account_token_test

import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.policies.service_account_token

test_token_is_not_mounted_by_default if {
	off := {"op": "add", "path": "/spec/automountServiceAccountToken", "value": false}
	service_account_token.patch == {off} with input as {"pod": fx.worker_pod}
}

test_the_annotation_opts_in if {
	annotations := {"airflow-opa-mutation/automount-service-account-token": "true"}
	pod := json.patch(fx.kpo_pod, [{"op": "add", "path": "/metadata/annotations", "value": annotations}])
	service_account_token.opted_in with input as {"pod": pod}
	service_account_token.patch == set() with input as {"pod": pod}
}

test_other_annotation_values_do_not_opt_in if {
	annotations := {"airflow-opa-mutation/automount-service-account-token": "yes"}
	pod := json.patch(fx.kpo_pod, [{"op": "add", "path": "/metadata/annotations", "value": annotations}])
	count(service_account_token.patch) == 1 with input as {"pod": pod}
}

test_an_explicit_spec_value_is_kept if {
	pod := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/automountServiceAccountToken", "value": true}])
	service_account_token.patch == set() with input as {"pod": pod}
}

test_the_annotation_is_configurable if {
	annotations := {"example.com/needs-api": "true"}
	pod := json.patch(fx.kpo_pod, [{"op": "add", "path": "/metadata/annotations", "value": annotations}])
	delta := {"policies": {"service_account_token": {"params": {"opt_in_annotation": "example.com/needs-api"}}}}
	service_account_token.patch == set() with input as {"pod": pod} with data.airflow.pod.lib.config.user as delta
}

_projected(sources) := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/volumes", "value": [
	{"name": "config", "configMap": {"name": "etl"}},
	{"name": "kube-api", "projected": {"sources": sources}},
]}])

_token := {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 3600}}

# automountServiceAccountToken: false does not stop a token projected into a
# volume: the walk-around of issue 13.
test_a_projected_token_is_denied if {
	pod := _projected([{"configMap": {"name": "ca"}}, _token])
	msg := `volume "kube-api" projects a service account token, which is not allowed (allow_projected_token)`
	service_account_token.deny == {msg} with input as {"pod": pod}
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
	alone := json.patch(fx.kpo_pod, [{"op": "add", "path": "/spec/serviceAccount", "value": "cluster-admin"}])
	msg := `pod runs as service account "cluster-admin", which is not allowed (service_accounts)`
	service_account_token.deny == {msg} with input as {"pod": alone} with data.airflow.pod.lib.config.user as _accounts
	both := json.patch(fx.worker_pod, [{"op": "add", "path": "/spec/serviceAccount", "value": "cluster-admin"}])
	service_account_token.deny == {msg} with input as {"pod": both} with data.airflow.pod.lib.config.user as _accounts
}

test_every_service_account_is_allowed_by_default if {
	pod := json.patch(fx.worker_pod, [{"op": "replace", "path": "/spec/serviceAccountName", "value": "cluster-admin"}])
	service_account_token.deny == set() with input as {"pod": pod}
}
