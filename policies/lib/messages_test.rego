package airflow.pod.lib.messages_test

import data.airflow.pod.lib.messages

_repeat(s, n) := concat("", [s | some _ in numbers.range(1, n)])

test_short_values_are_kept if {
	messages.clip("python:3.11") == "python:3.11"
	messages.clip(_repeat("a", 256)) == _repeat("a", 256)
}

test_long_values_are_cut_with_their_length if {
	messages.clip(_repeat("a", 257)) == concat("", [_repeat("a", 256), "…[257 characters]"])
}

# Characters, not bytes: a multi-byte character is never split.
test_clip_counts_characters if {
	clipped := messages.clip(_repeat("é", 300))
	startswith(clipped, _repeat("é", 256))
	endswith(clipped, "…[300 characters]")
}

test_non_strings_are_shown_as_json if {
	messages.clip(7) == "7"
	messages.clip({"a": [1]}) == `{"a":[1]}`
	messages.quote(7) == "7"
}

test_quote_escapes if {
	messages.quote("a\"b\nc") == `"a\"b\nc"`
	messages.quote(_repeat("x", 300)) == concat("", [`"`, _repeat("x", 256), `…[300 characters]"`])
}

test_limit_keeps_a_fixed_number if {
	messages.limit(["a", "b"]) == ["a", "b"]
	msgs := [sprintf("m%d", [i]) | some i in numbers.range(1, 25)]
	limited := messages.limit(msgs)
	count(limited) == messages.max_per_policy + 1
	limited[0] == "m1"
	limited[messages.max_per_policy] == "... and 5 more"
}
