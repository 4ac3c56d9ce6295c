"""The OPA a test suite evaluates against: the pinned release, serving the user's policies and configuration.

Two backends, the same server either way (``opa run --server`` with the policy folders and the configuration
delta as a data file, ``{"airflow": {"pod": {"config": delta}}}``, as ``airflow-opa-mutation --config``
serves it):

- ``container``: the official image ``openpolicyagent/opa:<OPA_VERSION>`` through ``testcontainers``; the
  files are copied into the container (not bind-mounted), so a remote engine (Docker-in-Docker in CI) works
  too, and made world-readable (the image runs as 1000:1000).
- ``binary``: the local ``opa`` (``$AOM_OPA_BIN``, else PATH), as every command of the package starts it.

``auto`` picks the container when ``testcontainers`` is installed and a Docker-API engine answers
(``DOCKER_HOST``, else the default socket), else the binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._version import OPA_VERSION

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

    from ..cli._local_opa import LocalOpa

Backend = Literal["auto", "container", "binary"]
BACKENDS: tuple[str, ...] = ("auto", "container", "binary")
#: The image the container backend runs unless told otherwise: the release this package is tested with.
DEFAULT_IMAGE = f"openpolicyagent/opa:{OPA_VERSION}"
CONTAINER_PORT = 8181


class OpaStartError(RuntimeError):
    """OPA could not be started with these policies and this configuration (the message says why)."""


@dataclass
class OpaServer:
    """A running OPA: ``url`` is its base URL; ``backend`` is ``container`` or ``binary``."""

    url: str
    backend: str
    policies: tuple[Path, ...]
    config: Mapping[str, Any] | None
    image: str | None = None
    _local: LocalOpa | None = field(default=None, repr=False)
    _container: DockerContainer | None = field(default=None, repr=False)
    _tmp: str | None = field(default=None, repr=False)

    def logs(self) -> str:
        """What OPA printed (errors only: it runs with ``--log-level error``)."""
        if self._local is not None:
            return self._local.logs()
        if self._container is not None:
            out, err = self._container.get_logs()
            return (out + err).decode(errors="replace")
        return ""

    def stop(self) -> None:
        if self._local is not None:
            self._local.stop()
            self._local = None
        if self._container is not None:
            self._container.stop()
            self._container = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def config_document(delta: Mapping[str, Any]) -> dict[str, Any]:
    """The data document OPA serves a configuration delta as (``data.airflow.pod.config``)."""
    return {"airflow": {"pod": {"config": dict(delta)}}}


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A configuration delta from a YAML or JSON file (the format of ``airflow-opa-mutation --config``)."""
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as exc:
        raise OpaStartError(f"cannot read the configuration file {source}: {exc}") from None
    if source.suffix == ".json":
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise OpaStartError(f"{source}: not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise OpaStartError(f"{source}: not valid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise OpaStartError(f"{source}: a configuration delta must be a mapping, got {type(document).__name__}")
    return document


def engine_answers(attempts: int = 3) -> str | None:
    """None when ``testcontainers`` is installed and a Docker-API engine answers its ping, else why not.

    A busy engine may drop a connection: asked ``attempts`` times before ``auto`` settles for the binary.
    """
    try:
        from testcontainers.core.docker_client import DockerClient
    except ImportError:
        return "testcontainers is not installed"
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return "no DOCKER_HOST and no /var/run/docker.sock"  # nothing to ask: skip the client's discovery
    reason = ""
    for attempt in range(attempts):
        try:
            client = DockerClient()
            try:
                if client.client.ping():
                    return None
            finally:
                client.client.close()
        except Exception as exc:  # the engine does not answer: any error of the docker library
            reason = (
                f"the engine at {os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')} does not answer: {exc}"
            )
        if attempt + 1 < attempts:
            time.sleep(0.5)
    return reason or "the engine's ping failed"


def resolve_backend(backend: str) -> tuple[str, str]:
    """The backend to use, and why (for error messages)."""
    if backend not in BACKENDS:
        raise OpaStartError(f"unknown OPA backend {backend!r}: one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend, f"--opa-mutation-backend {backend}"
    why_not = engine_answers()
    if why_not is None:
        return "container", "auto: a container engine answers"
    return "binary", f"auto: no container engine ({why_not})"


def start_opa(
    policies: Sequence[str | os.PathLike[str]],
    config: Mapping[str, Any] | None = None,
    *,
    backend: str = "auto",
    image: str = DEFAULT_IMAGE,
    startup_timeout: float = 60.0,
) -> OpaServer:
    """Start OPA serving ``policies`` (folders or files) and the configuration delta ``config``."""
    if not policies:
        raise OpaStartError("no policies to serve: give a policy folder (--opa-mutation-policies)")
    paths = tuple(Path(p).resolve() for p in policies)
    for path in paths:
        if not path.exists():
            raise OpaStartError(f"the policy path {path} does not exist")
    chosen, why = resolve_backend(backend)
    tmp = tempfile.mkdtemp(prefix="aom-testing-")
    try:
        data = None
        if config:
            data = Path(tmp) / "config.json"
            data.write_text(json.dumps(config_document(config)))
        if chosen == "container":
            return _start_container(paths, config, data, image=image, timeout=startup_timeout, tmp=tmp)
        return _start_binary(paths, config, data, timeout=startup_timeout, tmp=tmp)
    except OpaStartError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OpaStartError(f"{exc}\n(backend {chosen}: {why})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _start_binary(
    paths: tuple[Path, ...], config: Mapping[str, Any] | None, data: Path | None, *, timeout: float, tmp: str
) -> OpaServer:
    from ..cli._local_opa import LocalOpa, OpaNotFound

    opa = LocalOpa([*paths, *([data] if data else [])], startup_timeout=timeout)
    try:
        opa.start()
    except OpaNotFound as exc:
        raise OpaStartError(f"{exc} (or use a container engine: --opa-mutation-backend container)") from None
    except (RuntimeError, OSError) as exc:
        opa.stop()
        raise OpaStartError(f"OPA could not start with {', '.join(map(str, paths))}: {exc}") from None
    return OpaServer(opa.url, "binary", paths, config, _local=opa, _tmp=tmp)


def _start_container(
    paths: tuple[Path, ...],
    config: Mapping[str, Any] | None,
    data: Path | None,
    *,
    image: str,
    timeout: float,
    tmp: str,
) -> OpaServer:
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError:
        raise OpaStartError(
            "the container backend needs testcontainers: pip install 'airflow-opa-mutation[testing]'"
        ) from None
    arguments = []
    try:
        container = DockerContainer(image).with_exposed_ports(CONTAINER_PORT)
    except Exception as exc:  # the docker library: no engine answers
        raise OpaStartError(f"cannot start {image} through the container engine: {exc}") from None
    for index, path in enumerate(paths):
        staged = _stage(path, Path(tmp) / "policies" / str(index))
        container.with_copy_into_container(staged, "/policies")
        arguments.append(f"/policies/{index}" + ("" if path.is_dir() else f"/{path.name}"))
    if data is not None:
        container.with_copy_into_container(data.read_bytes(), "/config/config.json", 0o644)
        arguments.append("/config/config.json")
    container.with_command(
        [
            "run",
            "--server",
            "--addr",
            f"0.0.0.0:{CONTAINER_PORT}",
            "--skip-version-check",
            "--log-level",
            "error",
            *arguments,
        ]
    )
    try:
        container.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            container.stop()
        raise OpaStartError(f"cannot start {image} through the container engine: {exc}") from None
    server = OpaServer("", "container", paths, config, image=image, _container=container, _tmp=tmp)
    try:
        server.url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(CONTAINER_PORT)}"
        _wait_healthy(server, container, timeout)
    except BaseException:
        server._tmp = None  # start_opa removes it
        server.stop()
        raise
    return server


def _stage(source: Path, target: Path) -> Path:
    """A world-readable copy of a policy folder (or of a file, in a folder of its own) to copy in whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    else:
        target.mkdir()
        shutil.copy(source, target / source.name)
    for folder, _, files in os.walk(target):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return target


def _wait_healthy(server: OpaServer, container: DockerContainer, timeout: float) -> None:
    """Until ``GET /health`` answers 200; fails at once, with OPA's output, when the container exits
    (a Rego or data error) instead of waiting out the timeout."""
    deadline = time.monotonic() + timeout
    wrapped = container.get_wrapped_container()
    while time.monotonic() < deadline:
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            raise OpaStartError(
                f"OPA ({server.image}) exited on start with {', '.join(map(str, server.policies))}:\n{server.logs()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise OpaStartError(f"OPA ({server.image}) did not become healthy within {timeout}s:\n{server.logs()}")
