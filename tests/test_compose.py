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
    # The mask is the only policy loaded from disk; the policies come from the bundle.
    assert mounts[command[-1]] == (REPO / "deploy" / "opa" / "mask.rego").resolve()
    [key] = _option(command, "--set-file")
    name, _, path = key.partition("=")
    assert name == "keys.airflow_bundle.key"
    assert mounts[path].name == "airflow_bundle.pub.pem"
    assert (REPO / "policies").resolve() not in mounts.values()


def test_bundle_server_and_collector_are_the_services_the_config_points_at():
    compose = _compose()
    services = compose["services"]
    env = services["opa"]["environment"]
    assert env["AOM_BUNDLE_SERVICE_URL"] == "http://bundle-server:8080"
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
