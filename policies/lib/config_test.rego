package airflow.pod.lib.config_test

import data.airflow.pod.lib.config

# The `regal ignore:unresolved-reference` lines below mock data.airflow.pod.config,
# a base document Regal cannot see (it comes from data.yaml or the user's file).

test_shipped_data_file_is_an_empty_delta if {
	config.user == {"exempt": {}, "policies": {}}
}

test_defaults_come_from_rego if {
	config.settings.security_context.enabled == true
	config.settings.resource_defaults.enabled == false
	config.params("image_tag") == {"action": "warn", "forbidden_tags": ["latest"], "exempt_images": []}
	config.enabled("deny_privileged")
	not config.enabled("allowed_registries")
}

test_a_delta_deep_merges_over_the_defaults if {
	values_delta := {"readOnlyRootFilesystem": true, "capabilities": null}
	delta := {"policies": {"security_context": {"params": {"values": values_delta}}}}

	# regal ignore:unresolved-reference
	values := config.params("security_context").values with data.airflow.pod.config as delta
	values == {
		"runAsNonRoot": true,
		"allowPrivilegeEscalation": false,
		"capabilities": null,
		"seccompProfile": {"type": "RuntimeDefault"},
		"readOnlyRootFilesystem": true,
	}
}

test_arrays_replace_the_default if {
	delta := {"policies": {"deny_privileged": {"params": {"allowed_capabilities": ["NET_ADMIN"]}}}}

	# regal ignore:unresolved-reference
	config.params("deny_privileged").allowed_capabilities == ["NET_ADMIN"] with data.airflow.pod.config as delta
}

test_a_non_boolean_enabled_counts_as_true if {
	# whatever was meant, a mistake never switches a control off (errors says so)
	delta := {"policies": {"resource_defaults": {"enabled": "yes"}, "image_tag": {"enabled": "false"}}}

	# regal ignore:unresolved-reference
	config.enabled("resource_defaults") with data.airflow.pod.config as delta

	# regal ignore:unresolved-reference
	config.enabled("image_tag") with data.airflow.pod.config as delta
}

test_a_missing_or_malformed_config_means_no_delta if {
	# regal ignore:unresolved-reference
	config.user == {} with data.airflow.pod.config as "nonsense"
	config.settings.image_tag.enabled == true with config.user as {}
}

test_effective_and_unknown_policies if {
	delta := {"exempt": {"sys": {"namespace": "kube-system"}}, "policies": {"typo": {"enabled": true}}}
	effective := config.effective with config.user as delta
	effective.exempt == {"sys": {"namespace": "kube-system"}}
	not effective.policies.typo
	config.unknown_policies == {"typo"} with config.user as delta
	config.errors == {`configuration error: policies.typo: no policy of that name; ignored`} with config.user as delta
}
