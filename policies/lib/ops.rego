package airflow.pod.lib.ops

# Helpers that build RFC 6902 operations. Every helper that "adds if absent"
# creates missing parent objects with separate `add {}` operations, so that two
# policies writing different fields under the same missing parent compose: the
# framework drops identical duplicate operations (the second `add {}`), and only
# real disagreements on one path become conflicts.

# "Present" means present and not null (Kubernetes JSON as the hook sends it
# has no nulls). Where a helper adds a value, an empty list or map counts as
# absent: the API server drops empty lists and maps when it decodes a pod, so
# an admission webhook sees `capabilities: {}` where the hook saw
# `capabilities: {drop: []}`, and both must add the same thing.
_absent := {null, [], {}}

# escape(s): escape one JSON-pointer reference token (RFC 6901): "~" -> "~0", "/" -> "~1".
escape(s) := s if {
	not contains(s, "/")
	not contains(s, "~")
} else := strings.replace_n({"~": "~0", "/": "~1"}, s)

# pointer(segments): JSON pointer of an array of keys and indices, e.g.
# ["metadata", "labels", "example.com/team"] -> "/metadata/labels/example.com~1team".
# Fast path: string keys without "~" or "/".
pointer(segments) := concat("/", array.concat([""], segments)) if {
	every s in segments {
		is_string(s)
	}
	joined := concat("", segments)
	not contains(joined, "/")
	not contains(joined, "~")
} else := concat("", [concat("", ["/", escape(format(s))]) | some s in segments])

# format(s): a key as is, an index in decimal.
format(s) := s if is_string(s)

format(s) := format_int(s, 10) if is_number(s)

# join(base, segments): pointer `base` extended by `segments`.
join(base, segments) := concat("", [base, pointer(segments)])

# has(doc, path): doc holds a non-null value (false and "" included) at path.
has(doc, path) if object.get(doc, path, null) != null

add(path, value) := {"op": "add", "path": path, "value": value}

replace_op(path, value) := {"op": "replace", "path": path, "value": value}

# parents(doc, base, path): `add {}` for each missing strict ancestor of path,
# outermost first. doc is the document found at pointer base.
parents(doc, base, path) := [{"op": "add", "path": concat("", [base, pointer(prefix)]), "value": {}} |
	some k in numbers.range(1, count(path) - 1)
	k > 0
	k < count(path)
	prefix := array.slice(path, 0, k)
	object.get(doc, prefix, null) == null
]

# add_if_absent(doc, base, path, value): set path to value unless it holds a
# value already (an empty list or map is none, so value must not be one),
# creating missing parent objects first. doc is the document found at pointer
# base ("" for the pod itself, "/spec/containers/0" for a
# container). Returns an ordered array of operations (empty when present).
add_if_absent(doc, base, path, value) := [] if {
	not object.get(doc, path, null) in _absent
} else := [{"op": "add", "path": concat("", [base, pointer(path)]), "value": value}] if {
	# the common case: the parent is there
	object.get(doc, array.slice(path, 0, count(path) - 1), null) != null
} else := array.concat(
	parents(doc, base, path),
	[{"op": "add", "path": concat("", [base, pointer(path)]), "value": value}],
)

# append_if_absent(doc, base, path, value): append value to the array at path
# unless an equal element is there already; creates the array (and its missing
# parents) when absent.
append_if_absent(doc, base, path, value) := [] if {
	value in _array_at(doc, path)
} else := [add(join(base, array.concat(path, ["-"])), value)] if {
	is_array(object.get(doc, path, null))
} else := array.concat(
	parents(doc, base, path),
	[add(join(base, path), []), add(join(base, array.concat(path, ["-"])), value)],
)

_array_at(doc, path) := value if {
	value := object.get(doc, path, [])
	is_array(value)
} else := []

# fill(doc, base, key, desired, skip): the operations that add desired's
# fields to the object doc[key] where absent, two levels deep, as an ordered
# array; the fields named in the set skip are left out:
#   - doc[key] is created empty when absent (so that policies adding
#     different fields to one securityContext, say, compose);
#   - a field doc[key] lacks is added whole (its null members dropped);
#   - a field both hold as objects gets the sub-fields it lacks.
# Null values are skipped: a configuration unsets a default with null.
# doc is the document at pointer base. Pointers are built only for what is
# missing. When doc has no `key` at all (a bare container, the common case)
# the operations depend only on key, desired and skip: they are built once per
# query (OPA caches the call) and only prefixed with base per document.
fill(doc, base, key, desired, skip) := [{"op": "add", "path": concat("", [base, op.path]), "value": op.value} |
	some op in _fill_absent(key, desired, skip)
] if {
	object.get(doc, key, null) == null
} else := _fill(doc[key], base, key, desired, skip)

# _fill_absent(key, desired, skip): fill for a document without `key`, with
# pointers relative to it: the object is created, then every wanted field is
# added whole (there is nothing to descend into).
_fill_absent(key, desired, skip) := array.concat([{"op": "add", "path": path, "value": {}}], fields) if {
	path := concat("", ["/", escape(key)])
	fields := [{"op": "add", "path": concat("", [path, "/", escape(field)]), "value": _without_nulls(value)} |
		some field, value in desired
		value != null
		not field in skip
	]
	count(fields) > 0
} else := []

# _fill(current, base, key, desired, skip): fill, given what doc holds at key.
_fill(current, base, key, desired, skip) := array.concat(fields, subs) if {
	prefix := concat("", [base, "/", escape(key), "/"])
	fields := [{"op": "add", "path": concat("", [prefix, escape(field)]), "value": _without_nulls(value)} |
		some field, value in desired
		value != null
		not field in skip
		object.get(current, field, null) in {null, []}
	]
	subs := [{"op": "add", "path": concat("", [prefix, escape(field), "/", escape(sub)]), "value": value} |
		some field, wanted in desired
		is_object(wanted)
		not field in skip
		present := object.get(current, field, null)
		is_object(present)
		some sub, value in wanted
		value != null
		object.get(present, sub, null) in _absent
	]
}

_without_nulls(value) := {k: v |
	some k, v in value
	v != null
} if {
	is_object(value)
} else := value
