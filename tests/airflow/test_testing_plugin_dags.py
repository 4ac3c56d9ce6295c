"""The pytest plugin's DAG helper against real Airflow: examples/policy-tests (its pod and DAG tests) as a
team runs it, and ``run_dag`` on a DAG object and on tests/airflow/dags_scan (the pods ``scan`` builds)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest

from airflow_opa_mutation.testing import PodEvaluationError, PolicyRunner, start_opa

from ..conftest import POLICIES, REPO
from .conftest import kubeconfig, make_kpo  # noqa: F401  (kubeconfig: a fixture)

pytestmark = pytest.mark.airflow
pytest_plugins = ["pytester"]

DAGS = REPO / "tests" / "airflow" / "dags_scan"


def readme_example() -> str:
    """The README's example test file (section "Testing your DAGs against your policies")."""
    section = (REPO / "README.md").read_text().split("## Testing your DAGs against your policies", 1)[1]
    [code] = re.findall(r"```python\n# tests/test_policies.py\n(.*?)```", section, re.DOTALL)
    return str(code)


def test_the_example_and_the_readme_s_pass_against_the_shipped_library(pytester: pytest.Pytester):
    """The whole example, DAG tests included, and the README's test file dropped into it (the session's
    AIRFLOW_HOME is inherited: a throw-away one)."""
    shutil.copytree(REPO / "examples" / "policy-tests", pytester.path, dirs_exist_ok=True)
    (pytester.path / "tests" / "test_policies.py").write_text(readme_example())
    result = pytester.runpytest_subprocess(
        f"--opa-mutation-policies={POLICIES}", "--opa-mutation-backend", "binary", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=9)


@pytest.fixture(scope="module")
def library() -> Iterator[PolicyRunner]:
    server = start_opa([POLICIES], backend="binary")
    runner = PolicyRunner.for_server(server)
    yield runner
    runner.close()
    server.stop()


def test_a_dag_object_s_kpo_pod_is_built_by_airflow_and_mutated_in_enforce_mode(library, kubeconfig):  # noqa: F811
    operator = make_kpo(kubeconfig, task_id="transform", dag_id="warehouse")
    results = library.run_dag(operator.dag, launcher="kpo")
    [row] = results
    assert (row.dag_id, row.task_id, row.launcher, row.map_index) == ("warehouse", "transform",
                                                                      "kubernetes_pod_operator", -1)
    result = results.get("transform")
    assert result.outcome.mode == "enforce"  # unlike scan's dry-run: OPA sees what production sends
    assert result.airflow["launcher"] == "kubernetes_pod_operator"
    labels = result.pod.metadata.labels
    assert labels["dag_id"] == "warehouse" and labels["task_id"] == "transform" and labels["team"] == "analytics"
    assert result.pod.spec.containers[0].security_context.allow_privilege_escalation is False
    assert result.changed and "security_context" in result.policies


def test_a_dag_folder_gives_every_pod_and_the_denied_ones(library):
    with pytest.raises(PodEvaluationError, match=r"broken_dag\.py"):  # an import error fails the test
        library.run_dag(DAGS, pod_template_file=DAGS / "templates" / "worker.yaml")
    results = library.run_dag(DAGS / "kpo_tasks.py", launcher="kpo")
    assert {(r.task_id, r.launcher) for r in results.denied()} == {("privileged", "kubernetes_pod_operator")}
    assert sorted(r.map_index for r in results if r.task_id == "mapped") == [0, 1, 2]
    [xcom] = [r for r in results if r.task_id == "xcom_mapped"]
    assert xcom.result is None and "run time" in xcom.notes[0]  # arguments known only at run time
    executor = library.run_dag(DAGS / "executor_tasks.py", launcher="executor",
                               pod_template_file=DAGS / "templates" / "worker.yaml")
    assert [r.task_id for r in executor.denied()] == ["host_pid"]
    override = executor.get("with_override")
    assert override.pod.metadata.labels["cost-center"] == "analytics"  # the task's pod_override
    assert override.pod.metadata.labels["team"] == "data-platform"  # the pod template
    assert override.airflow["launcher"] == "kubernetes_executor"
