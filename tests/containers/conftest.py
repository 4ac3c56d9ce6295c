"""The OPA sidecar as a container, started through ``testcontainers`` the way docker-compose.yml runs it.

scripts/test prepares the engine (scripts/container-engine: a Docker engine, else podman serving the
Docker API) and the image the compose file names (scripts/opa-image); without them these tests fail.

Taken from docker-compose.yml's ``opa`` service, unchanged: the image, the command (deploy/opa/config.yaml,
the public key through --set-file, persist=false, the bundle service's CA, authz.rego and the mask from
disk), the environment but for the ports in its URLs, and the read-only mounts. Supplied by the tests: the
public key of the session's key pair (compose mounts build/bundle-keys/), the bundle server's certificate
made by the compose header's own command (build/bundle-tls/), the suite's own bundle server (over HTTPS
with that certificate) and collector (tests/bundles/servers.py) in place of nginx and collector.py, and a
random published port on 127.0.0.1 (compose: 8181).

Network: the container sits on the engine's default bridge, as under compose; the service names its URLs
use (bundle-server, decision-log-collector) are mapped with ``extra_hosts`` to that bridge's gateway, the
host's end of the bridge the engine made on this machine, so test traffic never leaves it. The bridge
(podman0 under netavark) exists only while a container runs, so the two servers listen on every address
and are reached through the gateway. Host networking was not used: the command binds 0.0.0.0:8181, which
there would take the host's port 8181, so the command would have to change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import docker
import pytest
import requests
import yaml
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy

from ..bundles.conftest import RESOURCE, bundles_dir, compose_certificate, keys, make_bundle  # noqa: F401
from ..bundles.servers import BundleServer, Collector
from ..conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
OPA_PORT = 8181  # the container port compose publishes
ANY_ADDRESS = "0.0.0.0"  # see the module docstring: the bridge's gateway comes and goes
# compose mounts the key `scripts/bundle-build keygen` writes; the tests mount the session's own key there.
COMPOSE_KEY = "./build/bundle-keys/airflow_bundle.pub.pem"
# and the bundle server's certificate its header's openssl command writes (SAN DNS:bundle-server, the name
# the container calls the bundle server by): the tests make it with that command.
COMPOSE_TLS = "./build/bundle-tls/tls.crt"
REVISION = "rev-container-1"

if not os.environ.get("AOM_CONTAINER_ENGINE"):
    raise pytest.UsageError(
        "tests/containers need a container engine and the OPA image: run them through scripts/test, or "
        'eval "$(scripts/container-engine)" && scripts/opa-image first'
    )


def opa_service() -> dict[str, Any]:
    service = yaml.safe_load(COMPOSE.read_text())["services"]["opa"]
    assert isinstance(service, dict)
    return service


def host_address() -> str:
    """The gateway of the engine's default bridge ("podman" under podman, "bridge" under Docker): the
    host as a container on that bridge sees it (127.0.0.1 is the container's own loopback).
    AOM_CONTAINER_HOST_ADDRESS overrides it."""
    explicit = os.environ.get("AOM_CONTAINER_HOST_ADDRESS")
    if explicit:
        return explicit
    client = docker.from_env()
    try:
        for name in ("podman", "bridge"):
            try:
                network = client.networks.get(name)
            except docker.errors.NotFound:
                continue
            for config in network.attrs.get("IPAM", {}).get("Config") or []:
                gateway = config.get("Gateway")
                if gateway and ":" not in gateway:
                    return str(gateway)
    finally:
        client.close()
    raise AssertionError("the engine's default bridge has no IPv4 gateway: set AOM_CONTAINER_HOST_ADDRESS")


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


@dataclass
class SidecarContainer:
    container: DockerContainer
    url: str

    def attrs(self) -> dict[str, Any]:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return dict(wrapped.attrs)

    def logs(self) -> str:
        out, err = self.container.get_logs()
        return (out + err).decode(errors="replace")

    def stop_gracefully(self, timeout: int = 10) -> None:
        """SIGTERM, as Kubernetes or `docker compose stop` do: OPA uploads its buffered decision logs
        before it exits (testcontainers' own stop() removes the container with SIGKILL)."""
        self.container.get_wrapped_container().stop(timeout=timeout)


@pytest.fixture(scope="module")
def bundle_tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compose_certificate(tmp_path_factory.mktemp("bundle-tls"))


@pytest.fixture(scope="module")
def container_bundle_server(tmp_path_factory: pytest.TempPathFactory, bundle_tls: Path) -> Iterator[BundleServer]:
    """HTTPS, as compose's nginx: with the certificate the compose header makes."""
    server = BundleServer(tmp_path_factory.mktemp("container-bundles"), host=host_address(), bind=ANY_ADDRESS,
                          tls=(bundle_tls / "tls.crt", bundle_tls / "tls.key"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def container_collector() -> Iterator[Collector]:
    server = Collector(host=host_address(), bind=ANY_ADDRESS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def start_container(
    keys: Any,  # noqa: F811  (tests.bundles.conftest.Keys)
    container_bundle_server: BundleServer,
    container_collector: Collector,
    bundle_tls: Path,
) -> Iterator[Callable[[], SidecarContainer]]:
    """Start docker-compose.yml's OPA service with testcontainers; ready once /health?bundles=true is 200
    (the readiness the compose file documents: a signed bundle revision is active)."""
    service = opa_service()
    started: list[SidecarContainer] = []
    servers = {"AOM_BUNDLE_SERVICE_URL": container_bundle_server, "AOM_DECISION_LOG_SERVICE_URL": container_collector}

    def start() -> SidecarContainer:
        container = DockerContainer(service["image"]).with_command(list(service["command"]))
        extra_hosts = {}
        for name, value in service["environment"].items():
            server = servers.get(name)
            setting = _with_port(value, server.port) if server else str(value)
            if server:
                extra_hosts[str(urlsplit(setting).hostname)] = server.host
            container.with_env(name, setting)
        for volume in service["volumes"]:
            host_path, path, mode = volume.split(":")
            mapped = {COMPOSE_KEY: keys.public, COMPOSE_TLS: bundle_tls / "tls.crt"}
            source = mapped.get(host_path, (REPO / host_path).resolve())
            assert Path(source).is_file(), f"docker-compose.yml mounts {host_path}, which does not exist"
            container.with_volume_mapping(source, path, mode)
        [published] = service["ports"]
        bind_ip, _, container_port = published.rsplit(":", 2)
        assert int(container_port) == OPA_PORT
        container.ports[f"{OPA_PORT}/tcp"] = (bind_ip, None)  # type: ignore[assignment]  # docker-py: (ip, any port)
        container.with_kwargs(extra_hosts=extra_hosts)
        container.waiting_for(
            HttpWaitStrategy(OPA_PORT, "/health?bundles=true").for_status_code(200).with_startup_timeout(30)
        )
        container.start()
        sidecar = SidecarContainer(container, f"http://{bind_ip}:{container.get_exposed_port(OPA_PORT)}")
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.container.stop()


@pytest.fixture(scope="module")
def sidecar(
    start_container: Callable[[], SidecarContainer],
    container_bundle_server: BundleServer,
    make_bundle: Callable[..., Path],  # noqa: F811
) -> SidecarContainer:
    """One OPA container for the module, serving the signed bundle ``REVISION``."""
    container_bundle_server.publish(RESOURCE, make_bundle(REVISION, scope=opa_service()["environment"]["AOM_DEPLOYMENT"]))
    return start_container()


def decide(sidecar: SidecarContainer, pod: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        f"{sidecar.url}/v1/data/airflow/pod/decision?provenance=true", json={"input": {"pod": pod}}, timeout=5
    )
    response.raise_for_status()
    body = response.json()
    assert isinstance(body, dict)
    return body
