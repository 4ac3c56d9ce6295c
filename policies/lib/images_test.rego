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

test_parse_registry_with_port_tag_and_digest if {
	ref := images.parse("registry.example.com:5000/team/app:v1@sha256:0123abcd")
	ref == {
		"registry": "registry.example.com:5000", "repository": "team/app",
		"tag": "v1", "digest": "sha256:0123abcd", "name": "registry.example.com:5000/team/app",
	}
}

test_parse_localhost_and_index_alias if {
	images.parse("localhost/app").registry == "localhost"
	images.parse("localhost:5000/app").registry == "localhost:5000"
	images.parse("index.docker.io/python:3").name == "docker.io/library/python"
	images.parse("ghcr.io/a/b/c@sha256:ff").repository == "a/b/c"
}

test_parse_rejects_garbage if {
	not images.parse("bad::")
	not images.parse("")
}

test_suffix_and_format if {
	images.suffix(images.parse("python")) == ""
	images.suffix(images.parse("python:3@sha256:ab")) == ":3@sha256:ab"
	images.format(images.parse("python:3.11")) == "docker.io/library/python:3.11"
}

test_under if {
	images.under("docker.io/library/python", "docker.io")
	images.under("docker.io/library/python", "docker.io/library/")
	images.under("quay.io/acme/app", "quay.io/acme/app")
	not images.under("quay.io/acmecorp/app", "quay.io/acme")
}
