"""The CLI in-process through click's CliRunner (stdout and stderr apart), against real OPA servers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from airflow_opa_mutation.cli import cli
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import REPO
from .golden import LIBRARY

# Where Airflow is installed, the configuration reads airflow.cfg: never the developer's.
if "AIRFLOW_HOME" not in os.environ:
    _HOME = tempfile.mkdtemp(prefix="aom-cli-airflow-home-")
    os.environ["AIRFLOW_HOME"] = _HOME
    os.environ["AIRFLOW_CONFIG"] = os.path.join(_HOME, "airflow.cfg")

SCHEMA_PATH = REPO / "docs" / "cli-output.schema.json"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No [opa_mutation] settings of the developer's, a fixed width, no colour unless asked."""
    for name in list(os.environ):
        if name.startswith("AIRFLOW__OPA_MUTATION__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture
def run() -> Callable[..., Result]:
    """``run("preview", ...)``: invoke the CLI; exceptions other than SystemExit propagate."""

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def schema_validator() -> Callable[[Any], None]:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def validate(document: Any) -> None:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    return validate


@pytest.fixture(scope="session")
def library_server() -> Iterator[LocalOpa]:
    """A running OPA serving the test library (for --url), its API locked as shipped (deploy/opa/authz.rego)."""
    opa = LocalOpa([LIBRARY, REPO / "deploy" / "opa" / "authz.rego"], args=["--authorization=basic"]).start()
    yield opa
    opa.stop()


@pytest.fixture
def library_copy(tmp_path: Path) -> Path:
    """A writable copy of the test library (for --update and broken variants)."""
    target = tmp_path / "library"
    shutil.copytree(LIBRARY, target)
    return target


def parse(result: Result) -> Any:
    """The JSON document a command printed on stdout (nothing else may be there)."""
    return json.loads(result.stdout)
