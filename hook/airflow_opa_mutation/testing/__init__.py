"""pytest plugin: test your pods and DAGs against your policies, with the real hook and the pinned OPA.

Installed with the package (entry point group ``pytest11``), so pytest loads this module in every session
of everyone who installed it: it imports only pytest and the standard library. OPA, the kubernetes
client, testcontainers and Airflow load when a test first asks for a fixture.

Options (command line, else ini; command-line paths are relative to the current folder, ini paths to the
ini file's folder):

- ``--opa-mutation-policies DIR`` / ``opa_mutation_policies``: policy folders or files (repeatable / one per line)
- ``--opa-mutation-config FILE`` / ``opa_mutation_config``: a YAML or JSON configuration delta, served
  as ``data.airflow.pod.config`` (the format of ``airflow-opa-mutation --config``)
- ``--opa-mutation-backend auto|container|binary`` / ``opa_mutation_backend``: ``container`` runs the
  official image ``openpolicyagent/opa:<OPA_VERSION>`` through testcontainers, ``binary`` the local ``opa``
  (``$AOM_OPA_BIN`` or PATH); ``auto`` (default) the container when an engine answers
- ``--opa-mutation-image IMAGE`` / ``opa_mutation_image``: another image (a mirror of the official one)

Fixtures:

- ``opa_mutation`` (session): a :class:`PolicyRunner` against OPA serving those policies and that
  configuration: ``run_pod(pod)`` and ``run_dag(dag)``
- ``opa_mutation_server`` (session): that OPA (``url``, ``backend``, ``logs()``)
- ``start_opa_mutation`` (session): ``start_opa_mutation(policies=None, config=None)`` gives a
  :class:`PolicyRunner` against another OPA (another configuration delta, other policies), started once per
  distinct arguments for the session
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._runner import PodEvaluationError, PodResult, PolicyRunner, TaskResult, TaskResults
    from ._server import OpaServer, OpaStartError, start_opa

_LAZY = {
    "PodEvaluationError": "_runner",
    "PodResult": "_runner",
    "PolicyRunner": "_runner",
    "TaskResult": "_runner",
    "TaskResults": "_runner",
    "OpaServer": "_server",
    "OpaStartError": "_server",
    "start_opa": "_server",
}

__all__ = [
    "OpaServer",
    "OpaStartError",
    "PodEvaluationError",
    "PodResult",
    "PolicyRunner",
    "TaskResult",
    "TaskResults",
    "start_opa",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opa-mutation", "airflow-opa-mutation: pods and DAGs against your policies")
    group.addoption(
        "--opa-mutation-policies",
        action="append",
        metavar="PATH",
        help="a policy folder or file OPA serves (repeatable; overrides the opa_mutation_policies ini option)",
    )
    group.addoption(
        "--opa-mutation-config",
        metavar="FILE",
        help="a YAML/JSON configuration delta served as data.airflow.pod.config",
    )
    group.addoption(
        "--opa-mutation-backend",
        choices=("auto", "container", "binary"),
        help="how OPA runs: the official image through testcontainers, the local opa binary, or auto (default)",
    )
    group.addoption("--opa-mutation-image", metavar="IMAGE", help="the OPA image for the container backend")
    parser.addini("opa_mutation_policies", "policy folders or files OPA serves (one per line)", type="paths")
    parser.addini("opa_mutation_config", "a YAML/JSON configuration delta (data.airflow.pod.config)")
    parser.addini("opa_mutation_backend", "auto, container or binary", default="auto")
    parser.addini("opa_mutation_image", "the OPA image for the container backend (default: the pinned release)")


def _ini_path(config: pytest.Config, value: str) -> Path:
    base = config.inipath.parent if config.inipath else config.rootpath
    return base / value


def _policies(config: pytest.Config) -> list[Path]:
    given = config.getoption("opa_mutation_policies")
    if given:
        return [Path(p) for p in given]
    return [Path(p) for p in config.getini("opa_mutation_policies")]


def _config_file(config: pytest.Config) -> Path | None:
    given = config.getoption("opa_mutation_config")
    if given:
        return Path(given)
    ini = config.getini("opa_mutation_config")
    return _ini_path(config, ini) if ini else None


def _setting(config: pytest.Config, name: str) -> str:
    return str(config.getoption(f"opa_mutation_{name}") or config.getini(f"opa_mutation_{name}") or "")


class _Servers:
    """The session's OPA servers, one per distinct (policies, configuration delta)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.servers: dict[str, OpaServer] = {}
        self.runners: list[PolicyRunner] = []

    def server(self, policies: Sequence[str | os.PathLike[str]], delta: Mapping[str, Any] | None) -> OpaServer:
        import json

        from ._server import DEFAULT_IMAGE, start_opa

        key = json.dumps([[str(Path(p).resolve()) for p in policies], delta or {}], sort_keys=True)
        if key not in self.servers:
            failure = None
            try:
                self.servers[key] = start_opa(
                    policies,
                    delta,
                    backend=_setting(self.config, "backend") or "auto",
                    image=_setting(self.config, "image") or DEFAULT_IMAGE,
                )
            except RuntimeError as exc:  # OpaStartError: OPA's own message says it all, no traceback
                failure = str(exc)
            if failure is not None:
                pytest.fail(failure, pytrace=False)
        return self.servers[key]

    def runner(self, server: OpaServer) -> PolicyRunner:
        from ._runner import PolicyRunner

        runner = PolicyRunner.for_server(server)
        self.runners.append(runner)
        return runner

    def close(self) -> None:
        for runner in self.runners:
            runner.close()
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def _opa_mutation_servers(pytestconfig: pytest.Config) -> Iterator[_Servers]:
    servers = _Servers(pytestconfig)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def opa_mutation_server(pytestconfig: pytest.Config, _opa_mutation_servers: _Servers) -> OpaServer:
    """OPA serving the configured policies and configuration delta, for the whole session."""
    from ._server import load_config

    policies = _policies(pytestconfig)
    if not policies:
        pytest.fail(
            "opa_mutation: no policies configured: give --opa-mutation-policies DIR "
            "or the opa_mutation_policies ini option",
            pytrace=False,
        )
    config_file = _config_file(pytestconfig)
    try:
        delta = load_config(config_file) if config_file else None
    except RuntimeError as exc:
        failure = str(exc)
    else:
        return _opa_mutation_servers.server(policies, delta)
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def opa_mutation(opa_mutation_server: OpaServer, _opa_mutation_servers: _Servers) -> PolicyRunner:
    """Runs pods and DAGs through the hook against ``opa_mutation_server``."""
    return _opa_mutation_servers.runner(opa_mutation_server)


@pytest.fixture(scope="session")
def start_opa_mutation(pytestconfig: pytest.Config, _opa_mutation_servers: _Servers) -> Callable[..., PolicyRunner]:
    """``start_opa_mutation(policies=None, config=None)``: a runner against OPA with these policies (default:
    the configured ones) and this configuration delta (a mapping, or a YAML/JSON file)."""

    def start(
        policies: Sequence[str | os.PathLike[str]] | None = None,
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    ) -> PolicyRunner:
        from ._server import load_config

        paths = list(policies) if policies is not None else _policies(pytestconfig)
        delta = load_config(config) if isinstance(config, (str, os.PathLike)) else config
        return _opa_mutation_servers.runner(_opa_mutation_servers.server(paths, delta))

    return start
