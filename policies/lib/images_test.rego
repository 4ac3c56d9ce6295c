package airflow.pod.lib.images_test

import data.airflow.pod.lib.images

test_parse_official_image_without_tag if {
	images.parse("python") == {
		"registry": "docker.io", "repository": "library/python",
		"tag": "", "digest": "", "name": "docker.io/library/python",
	}
}

test_parse_docker_hub_organisation if {
	ref := images.parse("apache/airflow:3.0.2")
	ref.registry == "docker.io"
	ref.repository == "apache/airflow"
	ref.tag == "3.0.2"
}

_sha256 := concat("", ["sha256:", concat("", ["0123456789abcdef" | some _ in numbers.range(1, 4)])])

test_parse_registry_with_port_tag_and_digest if {
	ref := images.parse(concat("", ["registry.example.com:5000/team/app:v1@", _sha256]))
	ref == {
		"registry": "registry.example.com:5000", "repository": "team/app",
		"tag": "v1", "digest": _sha256, "name": "registry.example.com:5000/team/app",
	}
}

test_parse_localhost_and_index_alias if {
	images.parse("localhost/app").registry == "localhost"
	images.parse("localhost:5000/app").registry == "localhost:5000"
	images.parse("index.docker.io/python:3").name == "docker.io/library/python"
	images.parse(concat("", ["ghcr.io/a/b/c@", _sha256])).repository == "a/b/c"
	images.parse("docker.io/python").name == "docker.io/library/python"
	images.parse("[::1]:5000/app").registry == "[::1]:5000"
}

test_parse_rejects_garbage if {
	not images.parse("bad::")
	not images.parse("")
}

test_suffix_and_format if {
	images.suffix(images.parse("python")) == ""
	images.suffix(images.parse(concat("", ["python:3@", _sha256]))) == concat("", [":3@", _sha256])
	images.format(images.parse("python:3.11")) == "docker.io/library/python:3.11"
}

test_under if {
	images.under("docker.io/library/python", "docker.io")
	images.under("docker.io/library/python", "docker.io/library/")
	images.under("quay.io/acme/app", "quay.io/acme/app")
	not images.under("quay.io/acmecorp/app", "quay.io/acme")
}

# The first component is the host the runtime pulls from when it has a "." or
# ":", is localhost, or is not all lowercase (distribution/reference).
test_parse_uppercase_first_component_is_a_host if {
	images.parse("Evil/x:1") == {"registry": "Evil", "repository": "x", "tag": "1", "digest": "", "name": "Evil/x"}
	images.parse("Localhost/x:1").registry == "Localhost"
	images.parse("ATTACKER-HOST/x:1").registry == "ATTACKER-HOST"
	images.parse("Docker.io/python").registry == "Docker.io"
}

test_parse_lowercase_first_component_is_docker_hub if {
	images.parse("evil/x:1").name == "docker.io/evil/x"
	images.parse("library/python").name == "docker.io/library/python"
}

# A host-like first component that is no valid host, in a name that is a
# valid path: Go gives an empty domain, and so do we.
test_parse_empty_domain if {
	images.parse("a_b.c/x") == {"registry": "", "repository": "a_b.c/x", "tag": "", "digest": "", "name": "a_b.c/x"}
}

test_parse_rejects_whitespace if {
	not images.parse("python:3.11 ")
	not images.parse("python:3.11\t")
	not images.parse("python:3.11\n")
	not images.parse(" python")
	not images.parse(" ")
}

test_parse_rejects_non_strings if {
	not images.parse(1)
	not images.parse(null)
	not images.parse(["python"])
}

_repeat(s, n) := concat("", [s | some _ in numbers.range(1, n)])

test_parse_tag_length if {
	images.parse(concat("", ["python:", _repeat("t", 128)])).tag == _repeat("t", 128)
	not images.parse(concat("", ["python:", _repeat("t", 129)]))
}

test_parse_tag_characters if {
	images.parse("python:V1_x.y-z").tag == "V1_x.y-z"
	not images.parse("python:.x")
	not images.parse("python:-x")
	not images.parse("python:")
	not images.parse("python:1:2")
}

# RepositoryNameTotalLengthMax (255) applies to the path, "library/" included.
test_parse_path_length if {
	images.parse(_repeat("a", 247)).repository == concat("", ["library/", _repeat("a", 247)])
	not images.parse(_repeat("a", 248))
	images.parse(concat("", ["registry.example.com/", _repeat("b", 255)]))
	not images.parse(concat("", ["registry.example.com/", _repeat("b", 256)]))
}

test_parse_rejects_uppercase_and_bad_separators if {
	not images.parse("Python")
	not images.parse("library/Python")
	not images.parse("evil.io/A")
	not images.parse("x/-y")
	not images.parse("x/y-")
	not images.parse("x/a..b")
	not images.parse("x/a___b")
	images.parse("x/a__b.c-d---e").repository == "x/a__b.c-d---e"
}

test_parse_digests if {
	images.parse(concat("", ["x@sha384:", _repeat("0", 96)])).digest == concat("", ["sha384:", _repeat("0", 96)])
	images.parse(concat("", ["x@sha512:", _repeat("0", 128)]))
	not images.parse(concat("", ["x@sha256:", _repeat("0", 63)]))
	not images.parse(concat("", ["x@sha256:", _repeat("0", 65)]))
	not images.parse(concat("", ["x@sha256:", _repeat("A", 64)]))
	not images.parse(concat("", ["x@SHA256:", _repeat("0", 64)]))
	not images.parse(concat("", ["x@md5:", _repeat("0", 32)]))
}

test_parse_ports_and_hosts if {
	images.parse("localhost:5000/x").registry == "localhost:5000"
	images.parse("127.0.0.1:5000/x").registry == "127.0.0.1:5000"
	not images.parse("registry:port/x")
	not images.parse("-bad.com/x")
	not images.parse("[::G]/x")
}

# A bare 64-hex string would be an image ID.
test_parse_rejects_identifiers if {
	not images.parse(_repeat("a", 64))
	images.parse(_repeat("a", 63))
	images.parse(_repeat("a", 65))
}

test_parse_rejects_padding if {
	not images.parse(concat("", ["evil.io/", _repeat("<", 1000)]))
}

# distribution/reference's regexp.go, composed the same way: the literal
# patterns of images.rego must be exactly these.
_alphanumeric := `[a-z0-9]+`

_separator := `(?:[._]|__|[-]+)`

_domain_name_component := `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`

_domain_name := concat("", [_domain_name_component, `(?:\.`, _domain_name_component, `)*`])

_domain_and_port := concat("", [`(?:`, _domain_name, `|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?`])

_path_component := concat("", [_alphanumeric, `(?:`, _separator, _alphanumeric, `)*`])

_remote_name := concat("", [_path_component, `(?:/`, _path_component, `)*`])

_tag := `[\w][\w.-]{0,127}`

_digest := `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`

_reference_pattern := concat("", [
	`^((?:`, _domain_and_port, `/)?`, _remote_name, `)`,
	`(?::(`, _tag, `))?(?:@(`, _digest, `))?$`,
])

_name_pattern := concat("", [`^(?:(`, _domain_and_port, `)/)?(`, _remote_name, `)$`])

test_reference_pattern_is_distribution_reference_composition if {
	images.reference_pattern == _reference_pattern
}

test_name_pattern_is_distribution_reference_composition if {
	images.name_pattern == _name_pattern
}
