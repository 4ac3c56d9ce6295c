package airflow.pod.lib.images

# parse(ref): the parts of an image reference, following the Docker rules:
# the first path component is a registry only when it contains "." or ":" or
# is "localhost"; otherwise the registry is docker.io, where one-component
# names live under "library/". "index.docker.io" is normalised to docker.io.
#   parse("python:3.11") == {"registry": "docker.io", "repository": "library/python",
#     "tag": "3.11", "digest": "", "name": "docker.io/library/python"}
# Undefined for a reference that does not parse. One regex match does the
# splitting.
parse(ref) := {
	"registry": registry,
	"repository": repository,
	"tag": tag,
	"digest": digest,
	"name": concat("/", [registry, repository]),
} if {
	# [registry "/"] repository [":" tag] ["@" digest]; a registry component
	# has a "." or ":" or is localhost.
	[[_, written, bare, tag, digest]] := regex.find_all_string_submatch_n(
		`^(?:([^/]*[.:][^/]*|localhost)/)?([^:@]+)(?::([\w][\w.-]{0,127}))?(?:@(.+))?$`,
		ref, 1,
	)
	registry := object.get({"": "docker.io", "index.docker.io": "docker.io"}, written, written)

	# docker.io names without a "/" live under library/
	repository := concat("", [object.get({"docker.io": {false: "library/"}}, [registry, contains(bare, "/")], ""), bare])
}

# suffix(parsed): the ":tag" and "@digest" parts as written ("" when absent).
suffix(parsed) := concat("", [
	object.get({"": ""}, parsed.tag, concat("", [":", parsed.tag])),
	object.get({"": ""}, parsed.digest, concat("", ["@", parsed.digest])),
])

# format(parsed): the fully qualified reference of a parsed image.
format(parsed) := concat("", [parsed.name, suffix(parsed)])

# under(name, prefix): a fully qualified name ("registry/repository") lies
# under a registry or registry/path prefix, matching whole path components.
under(name, prefix) if name == trim_suffix(prefix, "/")

under(name, prefix) if startswith(name, concat("", [trim_suffix(prefix, "/"), "/"]))
