"""The pytest plugin our users test their pods and DAGs with (``airflow_opa_mutation.testing``), used the way
they use it: pytest runs user-style test files (``pytester``) against a real OPA with the binary backend.
The container backend: tests/containers/test_testing_plugin_container.py; DAGs: tests/airflow/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from airflow_opa_mutation.testing import OpaStartError, start_opa
from airflow_opa_mutation.testing._server import resolve_backend

from .conftest import POLICIES, REPO

pytest_plugins = ["pytester"]

EXAMPLE = REPO / "examples" / "policy-tests"
BINARY = ("--opa-mutation-backend", "binary", "-p", "no:cacheprovider")


def copy_example(pytester: pytest.Pytester) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)


def test_the_entry_point_is_the_plugin():
    [found] = [ep for ep in entry_points(group="pytest11") if ep.value == "airflow_opa_mutation.testing"]
    assert found.name == "airflow_opa_mutation"


def test_loading_the_plugin_imports_nothing_heavy():
    """pytest imports it in every session of everyone who installed the package."""
    code = "import sys, airflow_opa_mutation.testing; print(sorted({m.split('.')[0] for m in sys.modules}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout.replace("'", '"')))
    assert "pytest" in loaded
    assert not loaded & {"kubernetes", "urllib3", "jsonpatch", "testcontainers", "docker", "yaml", "airflow", "click"}


def test_the_example_passes_against_the_shipped_library(pytester: pytest.Pytester):
    """examples/policy-tests, as a team runs it in its CI; its ini names ../../policies, which the copy
    lacks: the command line overrides it. test_dags.py needs Airflow: tests/airflow runs it."""
    copy_example(pytester)
    result = pytester.runpytest_subprocess("tests/test_pods.py", f"--opa-mutation-policies={POLICIES}", *BINARY)
    result.assert_outcomes(passed=4)


TEAM_POLICY = """
package airflow.pod

import rego.v1

team := object.get(data.airflow.pod.config, "team", "unknown")

decision := {"patch": [{"op": "add", "path": "/metadata/labels/team", "value": team, "policy": "team"}]} if {
    input.pod.metadata.labels.dag_id != "hijack"
}

decision := {"patch": [{"op": "replace", "path": "/metadata/labels/dag_id", "value": "other"}]} if {
    input.pod.metadata.labels.dag_id == "hijack"
}
"""

TEAM_TESTS = """
import pytest
from airflow_opa_mutation import PatchRejected
from airflow_opa_mutation.testing import PodEvaluationError

def pod(dag_id):
    return {"metadata": {"name": "p", "namespace": "ns", "labels": {"dag_id": dag_id}},
            "spec": {"containers": [{"name": "base", "image": "busybox:1.36"}]}}

def test_the_configuration_delta_is_data_airflow_pod_config(opa_mutation, opa_mutation_server):
    assert opa_mutation_server.backend == "binary"
    result = opa_mutation.run_pod(pod("etl"))
    assert result.changed and result.pod.metadata.labels == {"dag_id": "etl", "team": "data-platform"}
    assert result.ops == [{"op": "add", "path": "/metadata/labels/team", "value": "data-platform", "policy": "team"}]

def test_another_configuration(start_opa_mutation):
    assert start_opa_mutation(config={"team": "ml"}).run_pod(pod("etl")).pod.metadata.labels["team"] == "ml"

def test_the_pod_given_is_left_alone(opa_mutation):
    from airflow_opa_mutation import pod_from_json
    given = pod_from_json(pod("etl"))
    opa_mutation.run_pod(given)
    assert given.metadata.labels == {"dag_id": "etl"}

def test_the_hook_s_guards_hold(opa_mutation):
    with pytest.raises(PodEvaluationError, match="PatchRejected"):
        opa_mutation.run_pod(pod("hijack"))
    result = opa_mutation.run_pod(pod("hijack"), raise_errors=False)
    assert isinstance(result.error, PatchRejected) and not result.denied
    assert result.pod.metadata.labels == {"dag_id": "hijack"}
"""


def test_ini_options_name_the_policies_and_the_configuration(pytester: pytest.Pytester):
    """Ini paths are relative to the ini file; the configuration delta is served as data.airflow.pod.config."""
    (pytester.path / "rego").mkdir()
    (pytester.path / "rego" / "policy.rego").write_text(TEAM_POLICY)
    (pytester.path / "opa.yaml").write_text("team: data-platform\n")
    pytester.makeini("[pytest]\nopa_mutation_policies = rego\nopa_mutation_config = opa.yaml\n")
    pytester.makepyfile(test_team=TEAM_TESTS)
    sub = pytester.mkdir("sub")  # run from elsewhere: ini paths still resolve against the ini's folder
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sub)
        result = pytester.runpytest_subprocess(str(pytester.path), *BINARY)
    result.assert_outcomes(passed=4)


def test_a_policy_error_fails_the_tests_with_opa_s_message(pytester: pytest.Pytester):
    (pytester.path / "rego").mkdir()
    (pytester.path / "rego" / "broken.rego").write_text("package airflow.pod\n\ndecision := {\n")
    pytester.makepyfile(test_x="def test_x(opa_mutation):\n    pass\n")
    result = pytester.runpytest_subprocess("--opa-mutation-policies=rego", *BINARY)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*OPA could not start with */rego: OPA exited with 1 on start:", "*broken.rego:4: rego_parse_error*"])


def test_without_policies_the_fixture_says_what_to_configure(pytester: pytest.Pytester):
    pytester.makepyfile(test_x="def test_x(opa_mutation):\n    pass\n")
    result = pytester.runpytest_subprocess(*BINARY)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no policies configured: give --opa-mutation-policies*"])


def test_tests_that_do_not_use_the_fixtures_start_no_opa(pytester: pytest.Pytester):
    pytester.makepyfile(test_x="def test_x():\n    import sys\n    assert 'kubernetes' not in sys.modules\n")
    result = pytester.runpytest_subprocess("--opa-mutation-policies=nowhere", *BINARY)
    result.assert_outcomes(passed=1)


def test_auto_uses_the_binary_where_no_engine_answers(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    backend, why = resolve_backend("auto")
    assert backend == "binary" and "no-engine.sock does not answer" in why
    with pytest.raises(OpaStartError, match=r"cannot start openpolicyagent/opa:.* through the container engine"):
        start_opa([POLICIES], backend="container")
