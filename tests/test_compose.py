"""docker-compose.yml: a valid compose file whose OPA sidecar is the pinned version serving policies/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def pinned(name: str) -> str:
    text = (REPO / "scripts" / "versions.env").read_text()
    match = re.search(rf"^{name}=(\S+)$", text, re.MULTILINE)
    assert match, name
    return match.group(1)


def test_opa_sidecar_is_pinned_and_serves_policies():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    opa = compose["services"]["opa"]
    assert opa["image"] == f"openpolicyagent/opa:{pinned('OPA_VERSION').lstrip('v')}"
    assert opa["command"][:2] == ["run", "--server"]
    assert "0.0.0.0:8181" in opa["command"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in opa["volumes"]}
    policies_mount = mounts[opa["command"][-1]]
    assert (REPO / policies_mount).resolve() == (REPO / "policies").resolve()


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
