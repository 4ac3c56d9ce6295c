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
