"""Fixtures for the bundle suite: signing keys, bundles built by the real builder, a bundle server, a
decision-log collector, and OPA sidecars started with the shipped deploy/opa/config.yaml.

The sidecar is configured exactly as in production (same file, same ${VAR} substitution, the public key
through --set-file, the mask loaded from disk); the tests only shorten the polling and reporting delays
and point the persistence directory at a temporary folder.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client as k8s

from airflow_opa_mutation.cli import _bundle_builder as bundle
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES, REPO, worker_pod
from .servers import BundleServer, Collector

DEPLOY = REPO / "deploy" / "opa"
CONFIG = DEPLOY / "config.yaml"
MASK = DEPLOY / "mask.rego"
RESOURCE = "bundles/airflow/bundle.tar.gz"  # bundles.airflow.resource in deploy/opa/config.yaml
BUNDLE = "airflow"  # the bundle's name in deploy/opa/config.yaml
KEY_ID = bundle.DEFAULT_KEY_ID
SCOPE = "pytest"  # AOM_DEPLOYMENT of the sidecars started here: the scope their bundles are signed for
MARKER = "POLICY_REVISION"  # env var the test configuration injects: which revision decided
SECRET = "postgres://airflow:s3cr3t-hunter2@db.internal/airflow"

# Polling used by the tests (production: 30-60 s, see deploy/opa/config.yaml).
MIN_DELAY, MAX_DELAY = 1, 2

@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path
    other_private: Path  # a key the sidecars do not trust
    other_public: Path


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """RSA key pairs generated now (``cryptography``), never checked in."""
    folder = tmp_path_factory.mktemp("keys")
    private, public = bundle.keygen(folder, KEY_ID, bits=2048)
    other_private, other_public = bundle.keygen(folder / "other", KEY_ID, bits=2048)
    return Keys(private, public, other_private, other_public)


def org_config(folder: Path, revision: str) -> Path:
    """An organisation's configuration: env_injection on, injecting ``POLICY_REVISION=<revision>``."""
    path = folder / f"org-{revision}.json"
    config = {"policies": {"env_injection": {"enabled": True, "params": {"env": {MARKER: revision}}}}}
    path.write_text(json.dumps({"airflow": {"pod": {"config": config}}}))
    return path


@pytest.fixture(scope="session")
def bundles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def make_bundle(bundles_dir: Path, keys: Keys) -> Callable[..., Path]:
    """Build (once per distinct arguments) a bundle of the real policies/ with the test configuration."""
    cache: dict[tuple[Any, ...], Path] = {}

    def make(revision: str, *, signing_key: Path | None = None, key_id: str = KEY_ID, unsigned: bool = False,
             scope: str = SCOPE) -> Path:
        key = None if unsigned else (signing_key or keys.private)
        cache_key = (revision, key, key_id, unsigned, scope)
        if cache_key not in cache:
            output = bundles_dir / f"{revision}-{len(cache)}.tar.gz"
            bundle.build(
                POLICIES,
                output,
                config=org_config(bundles_dir, revision),
                revision=revision,
                signing_key=key,
                key_id=key_id,
                unsigned=unsigned,
                scope=None if unsigned else scope,
            )
            cache[cache_key] = output
        return cache[cache_key]

    return make


@pytest.fixture
def bundle_server(tmp_path: Path) -> Iterator[BundleServer]:
    server = BundleServer(tmp_path / "bundle-server")
    yield server
    server.stop()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.stop()


@pytest.fixture
def start_sidecar(
    start_opa: Callable[..., LocalOpa],
    bundle_server: BundleServer,
    collector: Collector,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., LocalOpa]]:
    """An OPA started the production way: deploy/opa/config.yaml + the public key + mask.rego from disk.

    Stopped here, before the collector and the bundle server go away: on SIGTERM OPA flushes its
    buffered decision logs and final status to the collector.
    """
    started: list[LocalOpa] = []

    def start(*, public_key: Path | None = None, extra_args: tuple[str, ...] = ()) -> LocalOpa:
        monkeypatch.setenv("AOM_BUNDLE_SERVICE_URL", bundle_server.url)
        monkeypatch.setenv("AOM_DECISION_LOG_SERVICE_URL", collector.url)
        monkeypatch.setenv("AOM_DEPLOYMENT", SCOPE)
        args = [
            "--config-file",
            str(CONFIG),
            "--set-file",
            f"keys.{KEY_ID}.key={public_key or keys.public}",
            "--set",
            f"persistence_directory={tmp_path / 'opa-persist'}",
            "--set",
            f"bundles.{BUNDLE}.polling.min_delay_seconds={MIN_DELAY}",
            "--set",
            f"bundles.{BUNDLE}.polling.max_delay_seconds={MAX_DELAY}",
            "--set",
            "decision_logs.reporting.min_delay_seconds=1",
            "--set",
            "decision_logs.reporting.max_delay_seconds=1",
            *extra_args,
        ]
        opa = start_opa(paths=[MASK], args=args)
        started.append(opa)
        return opa

    yield start
    for opa in started:
        process = opa.process
        opa.stop()
        # Stopped by SIGTERM itself (LocalOpa.stop kills it only after a 10 s grace): a clean shutdown.
        if process is not None and process.returncode == -signal.SIGKILL:
            raise AssertionError(f"OPA did not stop on SIGTERM and was killed:\n{opa.logs()[-2000:]}")


def compose_certificate(folder: Path, san: str | None = None) -> Path:
    """docker-compose.yml's header command for the bundle server's certificate, run as written except its
    output folder and, with ``san``, the name (IP:127.0.0.1 for a loopback server, for DNS:bundle-server)."""
    header = (REPO / "docker-compose.yml").read_text()
    [line] = [line.removeprefix("#").strip() for line in header.splitlines() if "openssl req" in line]
    assert line.startswith("mkdir -p build/bundle-tls && openssl req "), line
    command = line.replace("build/bundle-tls", shlex.quote(str(folder))).replace("DNS:bundle-server", san or "DNS:bundle-server")
    subprocess.run(["bash", "-c", command], check=True, capture_output=True, timeout=60)
    return folder


def opa_status(opa: LocalOpa) -> dict[str, Any]:
    """OPA's own status (GET /v1/status; not a policy query, so it is not decision-logged)."""
    response = requests.get(f"{opa.url}/v1/status", timeout=2)
    response.raise_for_status()
    result = response.json()["result"]
    assert isinstance(result, dict)
    return result


def active_revision(opa: LocalOpa) -> str | None:
    if requests.get(f"{opa.url}/v1/status", timeout=2).status_code == 401:
        return decided_revision(opa)  # the shipped system.authz (deploy/opa/authz.rego) refuses GET /v1/status
    info = opa_status(opa).get("bundles", {}).get(BUNDLE, {})
    revision = info.get("active_revision")
    return revision if isinstance(revision, str) and revision else None


def decided_revision(opa: LocalOpa) -> str | None:
    """The bundle revision a decision reports (``?provenance=true``): what an OPA whose system.authz allows
    only decisions and /health says about its bundle."""
    response = requests.post(f"{opa.url}/v1/data/airflow/pod/decision?provenance=true", json={"input": {}}, timeout=5)
    response.raise_for_status()
    revision = response.json()["provenance"].get("bundles", {}).get(BUNDLE, {}).get("revision")
    return revision if isinstance(revision, str) and revision else None


def bundles_ready(opa: LocalOpa) -> int:
    return requests.get(f"{opa.url}/health?bundles=true", timeout=2).status_code


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)


def wait_active(opa: LocalOpa, revision: str, timeout: float = MAX_DELAY + 8) -> None:
    wait_until(lambda: active_revision(opa) == revision, timeout, f"bundle revision {revision} active\n{opa.logs()}")


def secret_pod(name: str = "bundle-test-pod") -> k8s.V1Pod:
    """A KubernetesExecutor worker pod carrying a credential in an env value."""
    pod = worker_pod(name)
    pod.spec.containers[0].env.append(k8s.V1EnvVar(name="AIRFLOW_CONN_DB", value=SECRET))
    return pod


def injected_marker(document: dict[str, Any] | None) -> str | None:
    """The POLICY_REVISION value the decision injected into container 'base', if any."""
    if document is None:
        return None
    for container in document.get("spec", {}).get("containers", []):
        if container.get("name") == "base":
            for env in container.get("env") or []:
                if env.get("name") == MARKER:
                    value = env.get("value")
                    return value if isinstance(value, str) else None
    return None


# -- figures -----------------------------------------------------------------------------------------------

FIGURES: list[tuple[str, str, float, str]] = []


def record(test: str, what: str, value: float, unit: str = "s") -> None:
    FIGURES.append((test, what, round(value, 3), unit))
    out = os.environ.get("AOM_BUNDLE_FIGURES_OUT")
    if out:
        import kubernetes

        with open(out, "a") as handle:
            row = {"test": test, "what": what, "value": round(value, 3), "unit": unit}
            handle.write(json.dumps({**row, "kubernetes": kubernetes.__version__, "python": sys.version.split()[0]}))
            handle.write("\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("bundle figures")
        for test, what, value, unit in FIGURES:
            terminalreporter.write_line(f"{test}: {what} = {value:g} {unit}")
