package airflow.pod.lib.schema_test

# Configuration mistakes (issue 22, item 7): each one is a framework warning
# on every decision naming the key, and none switches a control off or
# weakens it. Each policy declares `schema` beside `defaults`.

import data.airflow.pod.decision
import data.airflow.pod.lib.config as cfg
import data.airflow.pod.lib.fixtures_test as fx

# The framework's configuration errors about one key.
errors_at(d, key) := [m |
	some m in fx.msgs_of(d.warn, "framework")
	startswith(m, sprintf("configuration error: %s: ", [key]))
]

privileged_pod := fx.put(fx.hardened_pod, "/spec/containers/0/securityContext/privileged", true)

latest_pod := fx.put(fx.hardened_pod, "/spec/containers/0/image", "apache/airflow:latest")

# --- every shipped policy has a schema ---------------------------------------

test_every_policy_has_a_schema_covering_exactly_its_parameters if {
	some name, _ in cfg.shipped
	every name, defaults in cfg.shipped {
		# regal ignore:unresolved-reference
		schema := data.airflow.pod.policies[name].schema
		object.keys(defaults.params) == object.keys(schema)
	}
}

# --- enabled ------------------------------------------------------------------

test_a_string_enabled_does_not_switch_a_policy_off if {
	d := decision with input as {"pod": privileged_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"policies": {"deny_privileged": {"enabled": "false"}}}
	count(fx.msgs_of(d.deny, "deny_privileged")) > 0
	count(errors_at(d, "policies.deny_privileged.enabled")) == 1
}

test_a_string_true_enables_a_policy if {
	config := {"policies": {"allowed_registries": {"enabled": "true", "params": {"registries": ["registry.example.com"]}}}}
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	count(fx.msgs_of(d.deny, "allowed_registries")) > 0
	count(errors_at(d, "policies.allowed_registries.enabled")) == 1
}

test_a_policy_configured_as_a_non_object_keeps_its_defaults if {
	d := decision with input as {"pod": privileged_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"policies": {"deny_privileged": false}}
	count(fx.msgs_of(d.deny, "deny_privileged")) > 0
	count(errors_at(d, "policies.deny_privileged")) == 1
}

# --- settings keys and parameters ---------------------------------------------

test_an_unknown_settings_key_is_reported if {
	d := decision with input as {"pod": latest_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"policies": {"image_tag": {"param": {"action": "deny"}}}}
	count(fx.msgs_of(d.warn, "image_tag")) == 1
	count(errors_at(d, "policies.image_tag.param")) == 1
}

test_an_unknown_parameter_is_reported if {
	config := {"policies": {"require_resource_limits": {"enabled": true, "params": {"maximum": {"memory": "1Gi"}}}}}
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	count(errors_at(d, "policies.require_resource_limits.params.maximum")) == 1
}

test_a_mistyped_parameter_falls_back_to_its_default if {
	d := decision with input as {"pod": latest_pod, "airflow": fx.ke_airflow}
		with cfg.user as fx.params("image_tag", {"forbidden_tags": "latest"})
	count(fx.msgs_of(d.warn, "image_tag")) == 1
	count(errors_at(d, "policies.image_tag.params.forbidden_tags")) == 1
}

test_params_that_are_no_object_fall_back_to_the_defaults if {
	d := decision with input as {"pod": latest_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"policies": {"image_tag": {"params": ["deny"]}}}
	count(fx.msgs_of(d.warn, "image_tag")) == 1
	count(errors_at(d, "policies.image_tag.params")) == 1
}

test_an_unknown_top_level_key_is_reported if {
	d := decision with input as {"pod": fx.hardened_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"policy": {"image_tag": {"enabled": false}}}
	count(errors_at(d, "policy")) == 1
}

# --- exemptions -------------------------------------------------------------------

test_a_misspelt_matcher_key_never_widens_an_exemption_and_is_reported if {
	# Ignoring the unknown key would exempt every pod in the namespace.
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"exempt": {"ml": {"namespace": "airflow", "dag_idd": "nothing"}}}
	count(d.patch) > 0
	count(errors_at(d, "exempt.ml.dag_idd")) == 1
}

test_a_misspelt_matcher_key_in_a_policy_exemption_is_reported if {
	config := {"policies": {"security_context": {"exempt": {"root": {"label": {"team": "x"}}}}}}
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	count(fx.ops_of(d, "security_context")) > 0
	count(errors_at(d, "policies.security_context.exempt.root.label")) == 1
}

test_an_empty_labels_condition_exempts_nothing if {
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"exempt": {"everyone": {"labels": {}}}}
	count(d.patch) > 0
	count(errors_at(d, "exempt.everyone.labels")) == 1
}

test_a_mistyped_matcher_value_is_reported if {
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as {"exempt": {"ns": {"namespace": ["airflow"]}}}
	count(d.patch) > 0
	count(errors_at(d, "exempt.ns.namespace")) == 1
}

test_configuration_errors_are_on_every_decision if {
	# a pod every policy skips still carries them
	config := {"exempt": {"all": {"namespace": "*"}}, "policies": {"image_tag": {"enabled": "no"}}}
	d := decision with input as {"pod": fx.worker_pod, "airflow": fx.ke_airflow}
		with cfg.user as config
	d.patch == []
	count(errors_at(d, "policies.image_tag.enabled")) == 1
}

test_every_default_has_its_declared_type if {
	every name, defaults in cfg.shipped {
		# regal ignore:unresolved-reference
		schema := data.airflow.pod.policies[name].schema
		every key, type in schema {
			cfg.known_type(type)
			cfg.type_ok(defaults.params[key], type)
		}
	}
}

test_the_shipped_configuration_has_no_errors_or_advisories if {
	cfg.errors == set()
	cfg.advisories == set()
}

# --- the type language -----------------------------------------------------------

test_types if {
	cfg.type_ok(true, "boolean")
	not cfg.type_ok("true", "boolean")
	cfg.type_ok("x", "string")
	cfg.type_ok(1.5, "number")
	cfg.type_ok({}, "object")
	cfg.type_ok([1, "a"], "array")
	cfg.type_ok(["a"], "string[]")
	cfg.type_ok([], "string[]")
	not cfg.type_ok("a", "string[]")
	not cfg.type_ok(["a", 1], "string[]")
	cfg.type_ok(["/var/log", {"path": "/data"}], "string|object[]")
	cfg.type_ok(["/var/log", {"path": "/data"}], "(string|object)[]")
	not cfg.type_ok(["/var/log", 3], "string|object[]")
	cfg.type_ok(3, "string|number")
	not cfg.type_ok(null, "string|number")
	not cfg.type_ok(null, "object")
}

test_known_types if {
	cfg.known_type("boolean")
	cfg.known_type("string|object[]")
	cfg.known_type("(string|object)[]")
	cfg.known_type("number|string")
	not cfg.known_type("int")
	not cfg.known_type("string[][]")
	not cfg.known_type("list")
}

# --- what each error says --------------------------------------------------------

test_error_messages_name_the_key_and_what_happens if {
	config := {
		"policies": {
			"image_tag": {"enabled": "yes", "params": {"forbidden_tags": "latest", "actoin": "deny"}, "exempts": {}},
			"deny_host_path": {"params": null},
			"pod_security": {"exempt": ["x"]},
		},
		"exempt": {"ns": {"namespace": 1}, "gone": null, "odd": "kube-system"},
	}
	cfg.errors == {
		`configuration error: exempt.ns.namespace: must be a glob string, got 1; this exemption matches no pod`,
		`configuration error: exempt.odd: must be a matcher (an object), got "kube-system"; ignored`,
		`configuration error: policies.deny_host_path.params: must be an object, got null; the defaults are used`,
		`configuration error: policies.image_tag.enabled: must be true or false, got "yes"; the policy runs`,
		`configuration error: policies.image_tag.exempts: unknown key (known: enabled, exempt, params); ignored`,
		concat("", [
			"configuration error: policies.image_tag.params.actoin: ",
			"unknown parameter (known: action, exempt_images, forbidden_tags); ignored",
		]),
		concat("", [
			"configuration error: policies.image_tag.params.forbidden_tags: ",
			`must be string[], got "latest"; the default ["latest"] is used`,
		]),
		`configuration error: policies.pod_security.exempt: must be an object of named matchers, got ["x"]; ignored`,
	} with cfg.user as config
	cfg.settings.image_tag == {
		"enabled": true,
		"params": {"action": "warn", "forbidden_tags": ["latest"], "exempt_images": []},
	} with cfg.user as config
	cfg.settings.deny_host_path.params == {"allowed_prefixes": []} with cfg.user as config
	cfg.exempt == {"gone": null} with cfg.user as config
}

test_a_configuration_that_is_no_object_is_reported if {
	cfg.errors == {
		`configuration error: exempt: must be an object, got []; ignored`,
		`configuration error: policies: must be an object, got "all"; ignored`,
	} with cfg.user as {"exempt": [], "policies": "all"}
	cfg.settings == cfg.shipped with cfg.user as {"exempt": [], "policies": "all"}
}

test_label_map_problems if {
	config := {"exempt": {"a": {"labels": {"team": 1}}, "b": {"annotations": "x"}, "c": {"labels": {"team": "ml"}}}}
	cfg.errors == {
		`configuration error: exempt.a.labels: "team" must be a glob string, got 1; this exemption matches no pod`,
		concat("", [
			"configuration error: exempt.b.annotations: ",
			`must be a map of keys to glob strings, got "x"; this exemption matches no pod`,
		]),
	} with cfg.user as config
	object.keys(cfg.exempt) == {"c"} with cfg.user as config
}

test_a_policy_without_a_schema_keeps_its_parameters_unchecked_and_says_so if {
	config := fx.params("image_tag", {"action": "deny", "extra": 1})
	expected := concat("", [
		"configuration error: policies.image_tag.params: ",
		`policy "image_tag" defines no schema, so its parameters cannot be checked`,
	])
	cfg.errors == {expected} with cfg.user as config
		with data.airflow.pod.policies.image_tag.schema as "none"
	cfg.params("image_tag").extra == 1 with cfg.user as config
		with data.airflow.pod.policies.image_tag.schema as "none"
}

test_valid_configuration_has_no_errors if {
	config := {
		"exempt": {"legacy": {"dag_id": "legacy_*", "labels": {"team": "ml"}}, "removed": null},
		"policies": {
			"image_tag": {"enabled": false, "params": {"action": "deny"}, "exempt": {"x": {"namespace": "ops"}}},
			"node_placement": {"enabled": true, "params": {"rules": [{"match": {}, "node_selector": {}}]}},
		},
	}
	cfg.errors == set() with cfg.user as config
	object.keys(cfg.exempt) == {"legacy", "removed"} with cfg.user as config
}

# --- advisories ------------------------------------------------------------------

pinned := "registry.example.com/debug/tool@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

test_image_exemptions_not_pinned_by_digest_are_advised_against if {
	config := {"policies": {
		"deny_privileged": {"params": {"exempt_images": [pinned, "registry.example.com/debug/*"]}},
		"pod_security": {"params": {"exempt_images": [
			"registry.example.com/debug/tool:1.0",
			concat("", ["registry.example.com/*@", split(pinned, "@")[1]]),
		]}},
	}}
	advised := {a | some a in cfg.advisories; startswith(a, "policies.")} with cfg.user as config
	{split(a, ":")[0] | some a in advised} == {
		"policies.deny_privileged.params.exempt_images[1]",
		"policies.pod_security.params.exempt_images[0]",
		"policies.pod_security.params.exempt_images[1]",
	}
	cfg.advisories == set() with cfg.user as fx.params("image_tag", {"exempt_images": [pinned]})
}

test_namespace_globs_in_global_exemptions_are_advised_against if {
	config := {"exempt": {"platform": {"namespace": "kube-*"}, "system": {"namespace": "kube-system"}}}
	[a] := [a | some a in cfg.advisories] with cfg.user as config
	startswith(a, `exempt.platform.namespace: the glob "kube-*" exempts every pod`)
	cfg.digest_pinned(pinned)
	not cfg.digest_pinned("registry.example.com/debug/tool@sha256:0123")
}

# admission.trusted_requesters (lib/admission.rego): a malformed entry
# trusts nobody, and says so.
test_malformed_trusted_requesters_are_errors if {
	sound := {"admission": {"trusted_requesters": [{"username": "system:serviceaccount:airflow:airflow-scheduler"}]}}
	cfg.errors == set() with cfg.user as sound
	malformed := {"admission": {"trusted_requesters": [{"username": "x", "groups": []}, "y"], "z": 1}}
	{split(e, ":")[1] | some e in cfg.errors} == {
		" admission.trusted_requesters.0",
		" admission.trusted_requesters.1",
		" admission",
	} with cfg.user as malformed
}
