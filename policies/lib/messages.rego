package airflow.pod.lib.messages

# Bounds on what a pod can make a decision say. The pod is written by the
# people the policies judge: an image of 600,000 characters echoed in a
# message (OPA writes "<" as the six bytes \u003c) would make the response
# too large for the hook, and 1,500 violating containers would make 1,500
# messages. So every policy passes pod-provided strings (images, names,
# paths, capabilities, ...) through clip(), and the framework keeps at most
# max_per_policy messages per policy and kind (the rest summarised as
# "... and N more") and cuts any message at max_message_chars. The size of
# deny and warn then depends on the number of policies, not on the pod.

# Characters of one pod-provided value shown in a message (a long real image
# reference, with registry, path, tag and digest, fits).
max_value_chars := 256

# Characters of one message: a few clipped values and the policy's words.
max_message_chars := 1024

# Messages per policy and kind (deny, warn); the rest are counted.
max_per_policy := 20

# clip(value): a pod-provided value for a message. Strings longer than
# max_value_chars are cut, marked with an ellipsis and their length; other
# values are shown as JSON, clipped alike.
#   clip("python:3.11") == "python:3.11"
#   clip(<600008 characters>) == "evil.io/<<<…[600008 characters]" (256 kept)
clip(value) := value if {
	# the common case, in one call: a short string
	is_string(value)
	count(value) <= max_value_chars
} else := cut(_text(value), max_value_chars)

# quote(value): clip(value) as a Go-quoted string (what sprintf's %q makes:
# newlines and quotes escaped), or as JSON when the value is no string.
quote(value) := sprintf("%q", [clip(value)]) if {
	is_string(value)
} else := clip(value)

# cut(s, n): s, or its first n characters marked "…[<length> characters]".
cut(s, n) := s if {
	count(s) <= n
} else := concat("", [substring(s, 0, n), "…[", format_int(count(s), 10), " characters]"])

_text(value) := value if {
	is_string(value)
} else := json.marshal(value)

# limit(msgs): at most max_per_policy of the messages (an array, in order),
# then one "... and N more" line.
limit(msgs) := msgs if {
	count(msgs) <= max_per_policy
} else := array.concat(
	array.slice(msgs, 0, max_per_policy),
	[sprintf("... and %d more", [count(msgs) - max_per_policy])],
)
