# regal ignore:directory-package-mismatch
package airflow.pod.lib.images

# parse(ref): the parts of an image reference, following the Docker rules:
# the first path component is a registry only when it contains "." or ":" or
# is "localhost"; otherwise the registry is docker.io, where one-component
# names live under "library/". "index.docker.io" is normalised to docker.io.
#   parse("python:3.11") == {"registry": "docker.io", "repository": "library/python",
#     "tag": "3.11", "digest": "", "name": "docker.io/library/python"}
parse(ref) := {
	"registry": registry,
	"repository": repository,
	"tag": tag,
	"digest": digest,
	"name": concat("/", [registry, repository]),
} if {
	is_string(ref)
	[name_tag, digest] := _split_digest(ref)
	[registry, path] := _split_registry(name_tag)
	[bare, tag] := _split_tag(path)
	repository := _repository(registry, bare)
}

_split_digest(ref) := [substring(ref, 0, i), substring(ref, i + 1, -1)] if {
	i := indexof(ref, "@")
	i >= 0
} else := [ref, ""]

_split_registry(name) := [_normalise(first), concat("/", array.slice(parts, 1, count(parts)))] if {
	parts := split(name, "/")
	count(parts) > 1
	first := parts[0]
	_is_registry(first)
} else := ["docker.io", name]

_is_registry(s) if contains(s, ".")

_is_registry(s) if contains(s, ":")

_is_registry("localhost")

_normalise("index.docker.io") := "docker.io"

_normalise(r) := r if r != "index.docker.io"

# After the registry is split off, ":" can only introduce the tag.
_split_tag(path) := [substring(path, 0, i), substring(path, i + 1, -1)] if {
	i := indexof(path, ":")
	i >= 0
} else := [path, ""]

_repository("docker.io", bare) := concat("/", ["library", bare]) if not contains(bare, "/")

_repository(registry, bare) := bare if {
	not _official(registry, bare)
}

_official("docker.io", bare) if not contains(bare, "/")

# suffix(parsed): the ":tag" and "@digest" parts as written ("" when absent).
suffix(parsed) := concat("", [_prefixed(":", parsed.tag), _prefixed("@", parsed.digest)])

_prefixed(_, "") := ""

_prefixed(sep, s) := concat("", [sep, s]) if s != ""

# format(parsed): the fully qualified reference of a parsed image.
format(parsed) := concat("", [parsed.name, suffix(parsed)])

# under(name, prefix): a fully qualified name ("registry/repository") lies
# under a registry or registry/path prefix, matching whole path components.
under(name, prefix) if name == trim_suffix(prefix, "/")

under(name, prefix) if startswith(name, concat("", [trim_suffix(prefix, "/"), "/"]))
