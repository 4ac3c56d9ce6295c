package airflow.pod.lib.exemptions_test

# Exemptions with an owner and an end (issue 26, item 2): reason, ticket and
# expires; an expired exemption no longer matches (OPA's clock, fixed here
# with `with time.now_ns`), and the decision lists the exemptions that
# applied.

import data.airflow.pod.decision
import data.airflow.pod.lib.config as cfg
import data.airflow.pod.lib.exemptions
import data.airflow.pod.lib.fixtures_test as fx
import data.airflow.pod.lib.framework

worker := {"pod": fx.worker_pod, "airflow": fx.ke_airflow}

# 2027-01-31T23:59:59Z and 2027-02-01T00:00:00Z: the last second of the
# expires date, and the first one after it.
last_second := 1801439999000000000

day_after := 1801440000000000000

# 2027-01-31T09:59:59Z and 10:00:00Z.
before_ten := 1801389599000000000

at_ten := 1801389600000000000

# 2027-01-20T00:00:00Z: eleven days before 2027-01-31 ends.
jan_20 := 1800403200000000000

# 2027-01-01T00:00:00Z: a month before.
jan_1 := 1798761600000000000

system := {"namespace": "airflow", "reason": "legacy batch, migrating", "ticket": "SEC-1234", "expires": "2027-01-31"}

test_a_date_means_valid_through_that_day_utc if {
	config := {"exempt": {"system": system}}
	framework.global_exemptions == {"system"} with input as worker with cfg.user as config
		with time.now_ns as last_second
	framework.global_exemptions == set() with input as worker with cfg.user as config
		with time.now_ns as day_after
}

test_a_date_time_ends_at_that_instant if {
	config := {"exempt": {"system": object.union(system, {"expires": "2027-01-31T12:00:00+02:00"})}}
	framework.global_exemptions == {"system"} with input as worker with cfg.user as config
		with time.now_ns as before_ten
	framework.global_exemptions == set() with input as worker with cfg.user as config
		with time.now_ns as at_ten
}

test_an_expired_global_exemption_lets_every_policy_apply_and_says_so if {
	config := {"exempt": {"system": system}}
	live := decision with input as worker with cfg.user as config with time.now_ns as last_second
	live.patch == []
	live.exemptions == [object.union(object.remove(system, ["namespace"]), {"name": "system"})]
	gone := decision with input as worker with cfg.user as config with time.now_ns as day_after
	count(gone.patch) > 0
	not gone.exemptions
	fx.msgs_of(gone.warn, "framework") == [`exemption "system" expired on 2027-01-31 and no longer applies`]
}

test_a_policy_exemption_is_listed_with_its_policy if {
	token := {"labels": {"dag_id": "etl_daily"}, "ticket": "SEC-9", "expires": "2027-01-31T00:00:00Z"}
	config := {"policies": {"service_account_token": {"exempt": {"api-clients": token}}}}
	d := decision with input as worker with cfg.user as config with time.now_ns as jan_1
	fx.ops_of(d, "service_account_token") == []
	d.exemptions == [{
		"name": "api-clients",
		"policy": "service_account_token",
		"ticket": "SEC-9",
		"expires": "2027-01-31T00:00:00Z",
	}]
	expired := decision with input as worker with cfg.user as config with time.now_ns as at_ten
	count(fx.ops_of(expired, "service_account_token")) > 0
	fx.msgs_of(expired.warn, "framework") == [concat("", [
		`exemption "api-clients" of policy "service_account_token" expired on 2027-01-31T00:00:00Z `,
		"and no longer applies",
	])]
}

test_global_exemptions_come_first_then_by_policy_and_name if {
	config := {
		"exempt": {"b": {"namespace": "airflow"}, "a": {"dag_id": "etl_*"}},
		"policies": {
			"image_tag": {"exempt": {"z": {"namespace": "airflow"}}},
			"security_context": {"exempt": {"y": {"namespace": "airflow"}}},
		},
	}
	d := decision with input as worker with cfg.user as config
	[[object.get(e, "policy", ""), e.name] | some e in d.exemptions] == [
		["", "a"],
		["", "b"],
		["image_tag", "z"],
		["security_context", "y"],
	]
}

test_an_exemption_of_a_disabled_policy_is_not_listed if {
	config := {"policies": {"image_tag": {"enabled": false, "exempt": {"z": {"namespace": "airflow"}}}}}
	d := decision with input as worker with cfg.user as config
	not d.exemptions
}

test_no_exemption_no_member if {
	d := decision with input as worker
	object.keys(d) == {"patch", "deny", "warn"}
}

test_an_untrusted_dag_id_never_matches_even_with_an_owner if {
	config := {"exempt": {"debugging": {"dag_id": "ops_debug", "reason": "debug", "expires": "2099-01-01"}}}
	spoofed := object.union(fx.ke_airflow, {"dag_id": "ops_debug", "untrusted": ["dag_id"]})
	d := decision with input as {"pod": fx.worker_pod, "airflow": spoofed} with cfg.user as config
	count(d.patch) > 0
	not d.exemptions
}

test_an_exemption_with_only_an_owner_has_no_conditions if {
	config := {"exempt": {"who": {"reason": "r", "ticket": "T-1"}}}
	d := decision with input as worker with cfg.user as config
	count(d.patch) > 0
	not d.exemptions
	fx.msgs_of(d.warn, "framework") == [`exemption "who" has no conditions and is ignored`]
}

# --- configuration errors: never "never expires" ---------------------------------

test_a_malformed_expires_is_an_error_and_the_exemption_matches_no_pod if {
	config := {"exempt": {"system": object.union(system, {"expires": "2027-02-30"})}}
	framework.global_exemptions == set() with input as worker with cfg.user as config with time.now_ns as jan_1
	errs := cfg.errors with cfg.user as config
	count(errs) == 1
	some e in errs
	startswith(e, "configuration error: exempt.system.expires: must be an RFC 3339 date (2027-01-31) or date-time")
	endswith(e, "this exemption matches no pod")
}

test_every_malformed_expires_is_refused if {
	every bad in ["31.01.2027", "2027-02-30", "2027-1-31", "2027-01-31T12:00:00", "tomorrow", 20270131, true, ""] {
		refused({"exempt": {"system": object.union(system, {"expires": bad})}})
	}
}

# One configuration error, and the exemption matches no pod.
refused(config) if {
	# regal ignore:external-reference,with-outside-test-context
	count(cfg.errors) == 1 with cfg.user as config

	# regal ignore:external-reference,with-outside-test-context
	framework.global_exemptions == set() with input as worker with cfg.user as config with time.now_ns as jan_1
}

test_a_malformed_policy_exemption_expires_is_reported_at_its_key if {
	config := {"policies": {"image_tag": {"exempt": {"ci": {"namespace": "ci", "expires": "soon"}}}}}
	cfg.settings.image_tag.exempt == {} with cfg.user as config
	some e in cfg.errors with cfg.user as config
	startswith(e, "configuration error: policies.image_tag.exempt.ci.expires: must be an RFC 3339 date")
}

test_reason_and_ticket_are_bounded_single_line_strings if {
	long := concat("", [x | some _ in numbers.range(1, 201); x := "r"])
	owners := [{"reason": long}, {"reason": 1}, {"reason": "a\nb"}, {"ticket": concat("", ["T", long])}, {"ticket": ""}]
	every owner in owners {
		refused({"exempt": {"system": object.union({"namespace": "airflow"}, owner)}})
	}
}

test_an_exemption_with_an_owner_and_an_end_is_sound if {
	config := {"exempt": {"system": system}, "policies": {"image_tag": {"exempt": {"ci": system}}}}
	cfg.errors == set() with cfg.user as config
}

# --- the expiry report (verify, doctor, bundle build --strict) -------------------

test_expiry_lists_expired_and_expiring_within_14_days if {
	config := {
		"exempt": {
			"old": object.union(system, {"expires": "2027-01-10"}),
			"soon": system,
			"later": object.union(system, {"expires": "2027-03-01"}),
			"forever": {"namespace": "x"},
		},
		"policies": {"image_tag": {"exempt": {"ci": {"namespace": "ci", "expires": "2027-01-19T23:00:00Z"}}}},
	}
	cfg.expiry == {
		{"exemption": "exempt.old", "expires": "2027-01-10", "state": "expired", "ends": "2027-01-11T00:00:00Z"},
		{"exemption": "exempt.soon", "expires": "2027-01-31", "state": "expiring", "ends": "2027-02-01T00:00:00Z"},
		{
			"exemption": "policies.image_tag.exempt.ci",
			"expires": "2027-01-19T23:00:00Z",
			"state": "expired",
			"ends": "2027-01-19T23:00:00Z",
		},
	} with cfg.user as config with time.now_ns as jan_20
}

test_ends_of_dates_and_date_times if {
	exemptions.ends_ns("2027-01-31") == day_after
	exemptions.ends_ns("2027-01-31T12:00:00+02:00") == at_ten
	not exemptions.ends_ns("2027-01-31T12:00:00")
}
