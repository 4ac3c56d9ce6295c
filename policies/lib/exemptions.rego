# METADATA
# title: Exemptions with an owner and an end
# description: |
#   An exemption (global `exempt.<name>` or `policies.<policy>.exempt.<name>`)
#   is a matcher (lib/match.rego) plus three optional fields that are no
#   condition: `reason` and `ticket` (who owns it and why: operator text,
#   single line, bounded) and `expires`, an RFC 3339 date ("2027-01-31":
#   valid through that day, UTC) or date-time ("2027-01-31T18:00:00Z": valid
#   until that instant). An expired exemption matches no pod (OPA's clock,
#   time.now_ns). A malformed field is a configuration error
#   (lib/config.rego), and the exemption then matches no pod: never a
#   silent "never expires".
# scope: package
package airflow.pod.lib.exemptions

import data.airflow.pod.lib.match

# The fields of an exemption that are no matcher condition.
owner_keys := {"reason", "ticket", "expires"}

# Their bounds: they reach decisions, decision logs and `exemptions report`.
max_reason_chars := 200

max_ticket_chars := 100

# verify and doctor warn this many days before an exemption ends.
warning_days := 14

# conditions(exemption): the matcher part of an exemption.
conditions(exemption) := object.remove(exemption, owner_keys)

# problems(exemption): [key, problem] for each condition match.applies()
# cannot honour and each malformed owner field.
problems(exemption) := match.problems(conditions(exemption)) | {[key, problem] |
	some key in owner_keys
	value := exemption[key]
	some problem in _owner_problems(key, value)
}

_owner_problems("expires", value) := {sprintf(
	"must be an RFC 3339 date (2027-01-31) or date-time (2027-01-31T18:00:00Z), got %s",
	[json.marshal(value)],
)} if {
	not ends_ns(value)
}

_owner_problems("reason", value) := _text_problems(value, max_reason_chars)

_owner_problems("ticket", value) := _text_problems(value, max_ticket_chars)

_text_problems(value, _) := {sprintf("must be a string, got %s", [json.marshal(value)])} if not is_string(value)

_text_problems(value, limit) := {sprintf("must be 1 to %d characters on one line", [limit])} if {
	is_string(value)
	not _one_line(value, limit)
}

_one_line(value, limit) if {
	count(value) > 0
	count(value) <= limit
	not regex.match(`[\x00-\x1f\x7f]`, value)
}

# ends_ns(expires): the instant (ns since the epoch) from which the
# exemption no longer matches; undefined when expires is malformed. A date
# ends when the next day begins in UTC ("expires 2027-01-31" is what a
# security team writes for "valid through the 31st").
ends_ns(expires) := time.parse_ns("2006-01-02", expires) + _day_ns if {
	is_string(expires)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, expires)
} else := time.parse_rfc3339_ns(expires) if {
	is_string(expires)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`, expires)
}

_day_ns := ((24 * 60) * 60) * 1000000000

# live(exemption): it has no end, or its end has not come yet.
live(exemption) if not exemption.expires

live(exemption) if time.now_ns() < ends_ns(exemption.expires)

# expired(exemption): its end has come.
expired(exemption) if time.now_ns() >= ends_ns(exemption.expires)

# state(exemption): "expired", "expiring" (within warning_days) or undefined.
state(exemption) := "expired" if {
	expired(exemption)
} else := "expiring" if {
	time.now_ns() + (warning_days * _day_ns) > ends_ns(exemption.expires)
}

# describe(name, policy, exemption): what the decision lists for an
# exemption that applied ("policy" only for a policy's own, the owner fields
# only when set).
describe(name, policy, exemption) := object.union(
	_scope(name, policy),
	object.filter(exemption, owner_keys),
)

_scope(name, "") := {"name": name}

_scope(name, policy) := {"name": name, "policy": policy} if policy != ""
