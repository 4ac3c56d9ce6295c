package airflow.pod.lib.images

# Image references parsed exactly as the container runtime parses them:
# github.com/distribution/reference v0.6.0, ParseNormalizedNamed (containerd
# and the kubelet), with github.com/opencontainers/go-digest for digests.
# A policy that judged a reference differently from the runtime could be
# walked around (`Evil/x:1` is pulled from the host "Evil", not docker.io),
# so tests/test_image_reference_differential.py compares this file with the
# Go code on thousands of generated references.
#
# parse(ref): {registry, repository, tag, digest, name}, undefined exactly
# when ParseNormalizedNamed fails.
#   parse("python:3.11") == {"registry": "docker.io", "repository": "library/python",
#     "tag": "3.11", "digest": "", "name": "docker.io/library/python"}
# `registry` is Go's Domain, `repository` its Path, `name` its Name: domain
# "/" path, or the path alone in the one case Go yields an empty domain (a
# first component that splitDockerDomain takes for a host but that is no
# valid host while the whole name is a valid path, e.g. "a_b.c/x").
#
# Most references are plain: lowercase path components, maybe a host
# without a port, maybe a tag, no digest. Three literal patterns (one per
# place such a name lives: its own host, docker.io, docker.io/library)
# recognise them, and the tag is what follows the one ":". The general rule,
# two submatch regexes and the host rules, decides everything else. The
# patterns are literals and each branch builds its object itself: a rule or
# a function call per reference costs more here than the whole match. The
# differential test holds every branch to Go.
parse(ref) := {
	"registry": domain,
	"repository": path,
	"tag": substring(ref, count(name) + 1, -1),
	"digest": "",
	"name": concat("/", [domain, path]),
} if {
	# a host (dot-separated alphanumeric labels with inner hyphens, so
	# valid as a host and as a path component), then a path
	is_string(ref)
	regex.match(`^[a-z0-9]+(?:-+[a-z0-9]+)*(?:[.][a-z0-9]+(?:-+[a-z0-9]+)*)+(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)+(?::[\w][\w.-]{0,127})?$`, ref)
	name := split(ref, ":")[0]
	slash := indexof(name, "/")
	domain := substring(name, 0, slash)
	not domain in {"docker.io", "index.docker.io"}
	path := substring(name, slash + 1, -1)
	count(path) <= 255
} else := {
	"registry": "docker.io",
	"repository": name,
	"tag": substring(ref, count(name) + 1, -1),
	"digest": "",
	"name": concat("/", ["docker.io", name]),
} if {
	# a path on docker.io: a first component with no dot, other than localhost
	is_string(ref)
	regex.match(`^[a-z0-9]+(?:(?:_|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)+(?::[\w][\w.-]{0,127})?$`, ref)
	not startswith(ref, "localhost/")
	name := split(ref, ":")[0]
	count(name) <= 255
} else := {
	"registry": "docker.io",
	"repository": path,
	"tag": substring(ref, count(name) + 1, -1),
	"digest": "",
	"name": concat("/", ["docker.io", path]),
} if {
	# one component: an official image
	is_string(ref)
	regex.match(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?::[\w][\w.-]{0,127})?$`, ref)
	not regex.match(`^[a-f0-9]{64}$`, ref)
	name := split(ref, ":")[0]
	path := concat("", ["library/", name])
	count(path) <= 255
} else := {
	"registry": domain,
	"repository": path,
	"tag": tag,
	"digest": digest,
	"name": _name(domain, path),
} if {
	is_string(ref)

	# a bare 64-hex identifier is refused (it would be an image ID)
	not regex.match(`^[a-f0-9]{64}$`, ref)
	[split_domain, remainder] := _split_docker_domain(ref)

	# the repository part before any ":" must be lowercase
	remote := split(remainder, ":")[0]
	lower(remote) == remote

	# Parse(domain + "/" + remainder): the whole reference, then the name
	[[_, named, tag, digest]] := regex.find_all_string_submatch_n(
		reference_pattern,
		concat("/", [split_domain, remainder]), 1,
	)
	[[_, domain, path]] := regex.find_all_string_submatch_n(name_pattern, named, 1)
	count(path) <= 255 # RepositoryNameTotalLengthMax: Go checks the path only
	_valid_digest(digest)
}

# The patterns of distribution/reference's regexp.go, composed the same way
# (the composition is spelled out, and checked equal to these literals, in
# images_test.rego). Literals, not rules built with concat: the patterns are
# needed on every query, and in both phases. OPA's regular expressions are
# Go's regexp package, so they match alike.

# ReferenceRegexp: ^(name)(?::(tag))?(?:@(digest))?$
reference_pattern := `^((?:(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?$`

# anchoredNameRegexp: ^(?:(domain)/)?(path)$
name_pattern := `^(?:((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?)/)?([a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*)$`

# splitDockerDomain: [domain, remainder]. The first component is a host when
# it is "localhost", contains "." or ":", or is not all lowercase; else the
# name lives on docker.io, where one-component names get "library/".
_split_docker_domain(ref) := ["docker.io", concat("", ["library/", ref])] if {
	not contains(ref, "/")
} else := [domain, _official(domain, rest)] if {
	parts := split(ref, "/")
	rest := concat("/", array.slice(parts, 1, count(parts)))
	domain := _host(parts[0])
} else := ["docker.io", ref]

_host(first) := first if {
	first == "localhost"
} else := "docker.io" if {
	first == "index.docker.io"
} else := first if {
	regex.match(`[.:]`, first)
} else := first if {
	lower(first) != first
}

_official(domain, rest) := concat("", ["library/", rest]) if {
	domain == "docker.io"
	not contains(rest, "/")
} else := rest

# go-digest's Parse: an algorithm this runtime supports (containerd links
# sha256, sha384 and sha512) and lowercase hex of exactly its length. The
# reference pattern already checked the rough shape.
_valid_digest("")

_valid_digest(digest) if regex.match(`^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$`, digest)

_name("", path) := path

_name(domain, path) := concat("/", [domain, path]) if domain != ""

# suffix(parsed): the ":tag" and "@digest" parts as written ("" when absent).
suffix(parsed) := concat("", [
	object.get({"": ""}, parsed.tag, concat("", [":", parsed.tag])),
	object.get({"": ""}, parsed.digest, concat("", ["@", parsed.digest])),
])

# format(parsed): the fully qualified reference of a parsed image (Go's
# String() of the parsed reference).
format(parsed) := concat("", [parsed.name, suffix(parsed)])

# under(name, prefix): a fully qualified name ("registry/repository") lies
# under a registry or registry/path prefix, matching whole path components.
under(name, prefix) if name == trim_suffix(prefix, "/")

under(name, prefix) if startswith(name, concat("", [trim_suffix(prefix, "/"), "/"]))
