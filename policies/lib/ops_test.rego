package airflow.pod.lib.ops_test

import data.airflow.pod.lib.ops

test_escape if {
	ops.escape("example.com/team") == "example.com~1team"
	ops.escape("a~b/c") == "a~0b~1c"
	ops.escape("plain") == "plain"
}

test_pointer if {
	ops.pointer(["metadata", "labels", "example.com/team"]) == "/metadata/labels/example.com~1team"
	ops.pointer(["spec", "containers", 0, "env"]) == "/spec/containers/0/env"
	ops.pointer(["a~b"]) == "/a~0b"
	ops.pointer([]) == ""
	ops.join("/spec/containers/1", ["securityContext"]) == "/spec/containers/1/securityContext"
}

test_has if {
	ops.has({"a": {"b": false}}, ["a", "b"])
	ops.has({"a": ""}, ["a"])
	not ops.has({"a": {}}, ["a", "b"])
	not ops.has({"a": "x"}, ["a", "b"])
}

test_add_if_absent_leaves_present_values if {
	ops.add_if_absent({"securityContext": {"runAsNonRoot": false}}, "/c", ["securityContext", "runAsNonRoot"], true) == []
}

test_add_if_absent_adds_under_an_existing_parent if {
	added := ops.add_if_absent({"securityContext": {}}, "/c", ["securityContext", "runAsNonRoot"], true)
	added == [ops.add("/c/securityContext/runAsNonRoot", true)]
}

test_add_if_absent_creates_missing_parents_outermost_first if {
	ops.add_if_absent({}, "/c", ["securityContext", "seccompProfile", "type"], "RuntimeDefault") == [
		{"op": "add", "path": "/c/securityContext", "value": {}},
		{"op": "add", "path": "/c/securityContext/seccompProfile", "value": {}},
		{"op": "add", "path": "/c/securityContext/seccompProfile/type", "value": "RuntimeDefault"},
	]
}

test_append_if_absent if {
	toleration := {"key": "pool", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
	ops.append_if_absent({"spec": {"tolerations": [toleration]}}, "", ["spec", "tolerations"], toleration) == []
	append := {"op": "add", "path": "/spec/tolerations/-", "value": toleration}
	ops.append_if_absent({"spec": {"tolerations": []}}, "", ["spec", "tolerations"], toleration) == [append]
	ops.append_if_absent({}, "", ["spec", "tolerations"], toleration) == [
		{"op": "add", "path": "/spec", "value": {}},
		{"op": "add", "path": "/spec/tolerations", "value": []},
		{"op": "add", "path": "/spec/tolerations/-", "value": toleration},
	]
}

test_fill_creates_the_object_and_adds_whole_fields if {
	desired := {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"], "add": null}, "fsGroup": null}
	ops.fill({}, "/c", "securityContext", desired, set()) == [
		{"op": "add", "path": "/c/securityContext", "value": {}},
		{"op": "add", "path": "/c/securityContext/capabilities", "value": {"drop": ["ALL"]}},
		{"op": "add", "path": "/c/securityContext/runAsNonRoot", "value": true},
	]
}

test_fill_adds_missing_sub_fields_and_keeps_present_ones if {
	doc := {"securityContext": {"runAsNonRoot": false, "capabilities": {"add": ["NET_BIND_SERVICE"]}}}
	desired := {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"], "add": []}}
	drop := {"op": "add", "path": "/c/securityContext/capabilities/drop", "value": ["ALL"]}
	ops.fill(doc, "/c", "securityContext", desired, set()) == [drop]
}

test_fill_escapes_keys_and_does_nothing_when_complete if {
	ops.fill({}, "", "metadata", {"labels": {"example.com/team": "x"}}, set()) == [
		{"op": "add", "path": "/metadata", "value": {}},
		{"op": "add", "path": "/metadata/labels", "value": {"example.com/team": "x"}},
	]
	team := {"op": "add", "path": "/metadata/labels/example.com~1team", "value": "x"}
	desired := {"labels": {"example.com/team": "x"}}
	ops.fill({"metadata": {"labels": {}}}, "", "metadata", desired, set()) == [team]
	ops.fill({"s": {"a": 1}}, "", "s", {"a": 2, "b": null}, set()) == []
	ops.fill({}, "", "s", {"b": null}, set()) == []
	ops.fill({}, "", "s", {"a": 1, "b": 2}, {"a"}) == [
		{"op": "add", "path": "/s", "value": {}},
		{"op": "add", "path": "/s/b", "value": 2},
	]
}

test_replace_op if {
	ops.replace_op("/spec/hostname", "x") == {"op": "replace", "path": "/spec/hostname", "value": "x"}
}

test_single_key_paths_have_no_parents if {
	ops.parents({}, "/c", ["env"]) == []
	ops.append_if_absent({}, "/c", ["env"], {"name": "A"}) == [
		{"op": "add", "path": "/c/env", "value": []},
		{"op": "add", "path": "/c/env/-", "value": {"name": "A"}},
	]
}

test_append_to_a_non_array_replaces_nothing_silently if {
	# a scalar where a list belongs is not treated as containing the value
	ops.append_if_absent({"env": "x"}, "/c", ["env"], {"name": "A"}) == [
		{"op": "add", "path": "/c/env", "value": []},
		{"op": "add", "path": "/c/env/-", "value": {"name": "A"}},
	]
}

# The API server drops empty lists and maps before a webhook sees the pod:
# written or absent, the helpers add the same value.
test_empty_values_count_as_absent if {
	label := {"op": "add", "path": "/metadata/labels/team", "value": "x"}
	ops.add_if_absent({"metadata": {"labels": {"team": []}}}, "", ["metadata", "labels", "team"], "x") == [label]
	ops.add_if_absent({"metadata": {"labels": {"team": {}}}}, "", ["metadata", "labels", "team"], "x") == [label]
	drop := {"op": "add", "path": "/c/securityContext/capabilities/drop", "value": ["ALL"]}
	desired := {"capabilities": {"drop": ["ALL"]}}
	ops.fill({"securityContext": {"capabilities": {"drop": []}}}, "/c", "securityContext", desired, set()) == [drop]
	ops.fill({"securityContext": {"capabilities": {}}}, "/c", "securityContext", desired, set()) == [drop]
	groups := {"op": "add", "path": "/spec/securityContext/supplementalGroups", "value": [1000]}
	context := {"securityContext": {"supplementalGroups": []}}
	ops.fill(context, "/spec", "securityContext", {"supplementalGroups": [1000]}, set()) == [groups]
}
