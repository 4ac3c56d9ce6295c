"""The pytest plugin's container backend: the example policy tests against OPA as the pinned image,
started through testcontainers on the engine scripts/test set up (scripts/container-engine)."""

from __future__ import annotations

import shutil

import pytest

from airflow_opa_mutation._version import OPA_VERSION

from ..conftest import POLICIES, REPO

pytest_plugins = ["pytester"]

BACKEND_CHECK = f"""
def test_opa_runs_as_the_pinned_image(opa_mutation_server):
    assert opa_mutation_server.backend == "container"
    assert opa_mutation_server.image == "openpolicyagent/opa:{OPA_VERSION}"
"""


@pytest.mark.parametrize("backend", ["container", "auto"])
def test_the_example_passes_with_opa_in_a_container(pytester: pytest.Pytester, monkeypatch, backend):
    """``auto`` picks the container where an engine answers; no binary is needed then."""
    shutil.copytree(REPO / "examples" / "policy-tests", pytester.path, dirs_exist_ok=True)
    (pytester.path / "tests" / "test_backend.py").write_text(BACKEND_CHECK)
    monkeypatch.setenv("AOM_OPA_BIN", str(pytester.path / "no-opa-here"))
    result = pytester.runpytest_subprocess(
        "tests/test_pods.py", "tests/test_backend.py", f"--opa-mutation-policies={POLICIES}",
        "--opa-mutation-backend", backend, "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=5)
