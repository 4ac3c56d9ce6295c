# Folders are named policies/<name>/, not after the package path (see policies/README.md).
# regal ignore:directory-package-mismatch
package airflow.pod.lib.ops

# Helpers that build RFC 6902 operations. Every helper that "adds if absent"
# creates missing parent objects with separate `add {}` operations, so that two
# policies writing different fields under the same missing parent compose: the
# framework drops identical duplicate operations (the second `add {}`), and only
# real disagreements on one path become conflicts.

# escape(s): escape one JSON-pointer reference token (RFC 6901): "~" -> "~0", "/" -> "~1".
escape(s) := replace(replace(s, "~", "~0"), "/", "~1")

# pointer(segments): JSON pointer of an array of keys and indices, e.g.
# ["metadata", "labels", "example.com/team"] -> "/metadata/labels/example.com~1team".
pointer(segments) := concat("", [concat("", ["/", _token(s)]) | some s in segments])

_token(s) := escape(s) if is_string(s)

_token(s) := format_int(s, 10) if is_number(s)

# join(base, segments): pointer `base` extended by `segments`.
join(base, segments) := concat("", [base, pointer(segments)])

# A value no Kubernetes object holds, to tell "absent" from any present value.
_missing := {"airflow.pod.lib.ops": "missing"}

# has(doc, path): doc holds a value (any value, false and "" included) at path.
has(doc, path) if object.get(doc, path, _missing) != _missing

add(path, value) := {"op": "add", "path": path, "value": value}

replace_op(path, value) := {"op": "replace", "path": path, "value": value}

# parents(doc, base, path): `add {}` for each missing strict ancestor of path,
# outermost first. doc is the document found at pointer base.
parents(doc, base, path) := [add(join(base, prefix), {}) |
	some k in numbers.range(1, count(path))
	k < count(path)
	prefix := array.slice(path, 0, k)
	not has(doc, prefix)
]

# add_if_absent(doc, base, path, value): set path to value unless it holds a
# value already, creating missing parent objects first. doc is the document
# found at pointer base ("" for the pod itself, "/spec/containers/0" for a
# container). Returns an ordered array of operations (empty when present).
add_if_absent(doc, base, path, value) := [] if {
	has(doc, path)
} else := array.concat(parents(doc, base, path), [add(join(base, path), value)])

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

# leaves(desired): [path, value] for every leaf of a nested object of desired
# values (arrays and empty objects are leaves; null leaves are skipped, so a
# configuration can unset a default by writing null).
leaves(desired) := [[path, value] |
	walk(desired, [path, value])
	count(path) > 0
	every s in path {
		is_string(s)
	}
	_is_leaf(value)
]

_is_leaf(value) if not is_object(value)

_is_leaf(value) if value == {}

# add_missing(doc, base, prefix, desired): the operations that add every leaf
# of desired under path prefix where absent (a set: parents sort before their
# children because a pointer sorts before any longer pointer it prefixes).
add_missing(doc, base, prefix, desired) := {op |
	some leaf in leaves(desired)
	leaf[1] != null
	some op in add_if_absent(doc, base, array.concat(prefix, leaf[0]), leaf[1])
}
