"""docker-compose.yml: a valid compose file whose OPA sidecar is the pinned version, configured the way it
runs at scale (deploy/opa/config.yaml, a signed bundle from the bundle server, the mask from disk)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from airflow_opa_mutation._version import OPA_VERSION

REPO = Path(__file__).resolve().parents[1]


def pinned(name: str) -> str:
    text = (REPO / "scripts" / "versions.env").read_text()
    match = re.search(rf"^{name}=(\S+)$", text, re.MULTILINE)
    assert match, name
    return match.group(1)


def test_the_scripts_build_the_opa_version_the_package_names():
    """scripts/versions.env reads OPA's version from the package (the one copy an installed wheel has too)."""
    sourced = subprocess.run(["bash", "-c", f"source {REPO / 'scripts' / 'versions.env'} && echo $OPA_VERSION"],
                             check=True, capture_output=True, text=True, cwd="/")
    assert sourced.stdout.strip() == f"v{OPA_VERSION}"


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _mounts(service: dict) -> dict[str, Path]:
    """container path -> host path (resolved against the repository)."""
    return {v.split(":")[1]: (REPO / v.split(":")[0]).resolve() for v in service.get("volumes", [])}


def _option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == flag]


def test_opa_sidecar_is_pinned_and_runs_the_shipped_configuration():
    compose = _compose()
    opa = compose["services"]["opa"]
    image = f"openpolicyagent/opa:{OPA_VERSION}"
    assert opa["image"] == image
    command = opa["command"]
    assert command[:2] == ["run", "--server"]
    assert "0.0.0.0:8181" in command
    mounts = _mounts(opa)
    [config] = _option(command, "--config-file")
    assert mounts[config] == (REPO / "deploy" / "opa" / "config.yaml").resolve()
    # The mask and the API's authorization are the only policies loaded from disk; the rest is the bundle's.
    assert mounts[command[-1]] == (REPO / "deploy" / "opa" / "mask.rego").resolve()
    assert mounts[command[-2]] == (REPO / "deploy" / "opa" / "authz.rego").resolve()
    assert "--authorization=basic" in command, "the compose network reaches 0.0.0.0:8181: no writes (issue 25)"
    assert "--skip-version-check" in command
    [key] = _option(command, "--set-file")
    name, _, path = key.partition("=")
    assert name == "keys.airflow_bundle.key"
    assert mounts[path].name == "airflow_bundle.pub.pem"
    assert (REPO / "policies").resolve() not in mounts.values()


def test_bundle_server_and_collector_are_the_services_the_config_points_at():
    compose = _compose()
    services = compose["services"]
    env = services["opa"]["environment"]
    assert env["AOM_BUNDLE_SERVICE_URL"] == "https://bundle-server:8443"
    assert env["AOM_DECISION_LOG_SERVICE_URL"] == "http://decision-log-collector:8080"
    config = yaml.safe_load((REPO / "deploy" / "opa" / "config.yaml").read_text())
    resource = config["bundles"]["airflow"]["resource"]
    served = _mounts(services["bundle-server"])
    folder = "/usr/share/nginx/html/" + resource.rsplit("/", 1)[0]
    assert served[folder] == (REPO / "build" / "bundle").resolve()
    assert resource.rsplit("/", 1)[1] == "bundle.tar.gz"  # scripts/bundle-build's default output name
    assert "nginx.conf" in str(served["/etc/nginx/conf.d/default.conf"])
    collector = services["decision-log-collector"]
    assert _mounts(collector)["/collector"] == (REPO / "deploy" / "collector").resolve()


def test_dev_profile_serves_policies_from_the_working_tree():
    dev = _compose()["services"]["opa-dev"]
    assert dev["profiles"] == ["dev"]
    assert dev["image"] == _compose()["services"]["opa"]["image"]
    assert _mounts(dev)[dev["command"][-1]] == (REPO / "policies").resolve()


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], check=False, capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_validates():
    """scripts/install-tools installs a compose client; its `config` validates without a Docker engine."""
    command = compose_command()
    assert command is not None, "no compose client: run scripts/install-tools (installs Debian's docker-compose)"
    result = subprocess.run([*command, "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_airflow_service_is_the_official_image_with_this_package_and_points_at_the_sidecar():
    services = _compose()["services"]
    airflow = services["airflow"]
    dockerfile = (REPO / airflow["build"]["dockerfile"]).read_text()
    assert f"FROM apache/airflow:{pinned('AIRFLOW_VERSION')}" in dockerfile
    assert "pip wheel" in dockerfile and "/opt/airflow-opa-mutation" in dockerfile
    env = airflow["environment"]
    assert env["AIRFLOW__OPA_MUTATION__URL"] == "http://opa:8181"
    # Airflow starts only once OPA has activated a bundle (the healthcheck asks the server itself).
    assert airflow["depends_on"] == {"opa": {"condition": "service_healthy"}}
    assert "/health?bundles=true" in " ".join(services["opa"]["healthcheck"]["test"])
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "!hook/" in ignored and "!pyproject.toml" in ignored  # the build context holds the package


def test_the_bundle_service_is_https_and_the_sidecar_trusts_only_its_certificate():
    """nginx serves TLS on the port the sidecar's URL names, with build/bundle-tls/ (the compose header's
    openssl command writes it; tests/bundles/test_deploy.py runs that command and the sidecar over HTTPS)."""
    services = _compose()["services"]
    nginx = (REPO / "deploy" / "bundle-server" / "nginx.conf").read_text()
    assert re.search(r"^\s*listen 8443 ssl;", nginx, re.MULTILINE) and not re.search(r"listen \d+;", nginx)
    served = _mounts(services["bundle-server"])
    assert served["/etc/nginx/tls"] == (REPO / "build" / "bundle-tls").resolve()
    for name in ("tls.crt", "tls.key"):
        assert f"/etc/nginx/tls/{name};" in nginx
    opa = services["opa"]
    [ca] = [v.split("=", 1)[1] for v in _option(opa["command"], "--set") if v.startswith("services.bundles.tls.ca_cert=")]
    assert _mounts(opa)[ca] == (REPO / "build" / "bundle-tls" / "tls.crt").resolve()
    header = (REPO / "docker-compose.yml").read_text().split("\nservices:")[0]
    assert "-keyout build/bundle-tls/tls.key -out build/bundle-tls/tls.crt" in header
    assert "subjectAltName=DNS:bundle-server" in header


def test_published_ports_stay_on_loopback():
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_every_opa_skips_the_version_check_and_only_the_dev_one_is_open():
    services = _compose()["services"]
    for name in ("opa", "opa-dev"):
        assert "--skip-version-check" in services[name]["command"], name
    assert "--authorization=basic" not in services["opa-dev"]["command"], "a scratch OPA for policy authors"


def _setup_commands(text: str) -> list[str]:
    """The commands (comments dropped) of the compose file's header or a doc's fenced block."""
    return [re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines() if line.strip().startswith("scripts/") or "openssl req" in line]


def test_the_docs_compose_steps_are_the_compose_files_own():
    """A reader following docs/helm.md or docs/running-at-scale.md literally runs the set-up the compose file
    needs (its header, run by tests/bundles/test_deploy.py), certificate included: without it nginx has no
    certificate and the sidecar never gets a bundle."""
    header = "\n".join(line.removeprefix("#") for line in (REPO / "docker-compose.yml").read_text().splitlines()
                       if line.startswith("#"))
    wanted = [re.sub(r" \[--config org\.yaml\]$", "", command) for command in _setup_commands(header)]
    assert any("openssl req" in command for command in wanted), wanted
    for doc in ("docs/helm.md", "docs/running-at-scale.md"):
        blocks = re.findall(r"```bash\n(.*?)```", (REPO / doc).read_text(), re.S)
        [block] = [b for b in blocks if "docker compose up" in b]
        assert _setup_commands(block) == wanted, doc
