"""``airflow-opa-mutation scan``: real Airflow loads tests/airflow/dags_scan/ with its DagBag, builds every
task's pod the way the KubernetesPodOperator and the KubernetesExecutor do, and the shipped policy library
judges them in a real OPA."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from airflow_opa_mutation.cli import cli

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).resolve().parent / "dags_scan"
WORKER_TEMPLATE = DAGS / "templates" / "worker.yaml"
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "cli-output.schema.json"


def scan(*args: str):
    return CliRunner().invoke(cli, ["scan", *args], catch_exceptions=False, env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def scanned(library_opa):
    result = scan(str(DAGS), "--url", library_opa.url, "--pod-template-file", str(WORKER_TEMPLATE), "-o", "json")
    return result, json.loads(result.stdout)


def rows(document, launcher=None):
    return {(t["dag_id"], t["task_id"], t["launcher"], t["map_index"]): t for t in document["tasks"]
            if launcher is None or t["launcher"] == launcher}


def test_json_matches_the_schema(scanned):
    _, document = scanned
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(document)


def test_a_denied_task_makes_the_exit_status_1(scanned):
    result, document = scanned
    assert result.exit_code == 1 and document["exit_code"] == 1
    assert document["summary"]["denied"] == 2
    denied = {(t["dag_id"], t["task_id"], t["launcher"]): t["deny"] for t in document["tasks"] if t["status"] == "denied"}
    assert set(denied) == {("kpo_scan", "privileged", "kubernetes_pod_operator"),
                           ("executor_scan", "host_pid", "kubernetes_executor")}
    assert {m["policy"] for m in denied[("kpo_scan", "privileged", "kubernetes_pod_operator")]} == {
        "deny_privileged", "pod_security"}
    assert {m["policy"] for m in denied[("executor_scan", "host_pid", "kubernetes_executor")]} == {
        "deny_host_namespaces", "pod_security"}


def test_a_dag_that_fails_to_import_is_reported_not_fatal(scanned):
    _, document = scanned
    assert sorted(document["dags"]) == ["executor_scan", "kpo_scan"]
    [error] = document["import_errors"]
    assert error["file"].endswith("broken_dag.py") and "module_that_does_not_exist" in error["error"]


def test_kpo_pods_carry_the_task_instance_labels_and_are_evaluated_in_dry_run(scanned):
    _, document = scanned
    plain = rows(document)[("kpo_scan", "plain", "kubernetes_pod_operator", -1)]
    assert plain["status"] == "mutated" and plain["ops"] > 0
    assert {"security_context", "service_account_token"} <= set(plain["policies"])
    outcome = plain["outcome"]
    assert outcome["mode"] == "dry-run"
    assert outcome["airflow"]["launcher"] == "kubernetes_pod_operator"
    assert (outcome["airflow"]["dag_id"], outcome["airflow"]["task_id"]) == ("kpo_scan", "plain")
    labels = outcome["before"]["metadata"]["labels"]
    assert labels["kubernetes_pod_operator"] == "True" and labels["team"] == "analytics"
    assert "airflow_kpo_in_cluster" not in labels  # dry_run=True: no cluster is asked
    assert outcome["before"]["spec"]["containers"][0]["image"] == "ghcr.io/example/dbt:1.8.2"


def test_a_mapped_kpo_gets_one_pod_per_map_index(scanned):
    _, document = scanned
    mapped = {k[3]: t for k, t in rows(document, "kubernetes_pod_operator").items() if k[1] == "mapped"}
    assert sorted(mapped) == [0, 1, 2]
    for index, task in mapped.items():
        before = task["outcome"]["before"]
        assert before["metadata"]["labels"]["map_index"] == str(index)
        assert before["spec"]["containers"][0]["args"] == ["--shard", str(index)]
        assert task["outcome"]["airflow"]["map_index"] == index


def test_a_kpo_mapped_over_xcom_is_skipped_with_a_reason(scanned):
    _, document = scanned
    task = rows(document)[("kpo_scan", "xcom_mapped", "kubernetes_pod_operator", -1)]
    assert task["status"] == "skipped" and "run time" in task["notes"][0]


def test_a_kpo_pod_template_is_merged_and_judged(scanned):
    _, document = scanned
    task = rows(document)[("kpo_scan", "from_template", "kubernetes_pod_operator", -1)]
    after = task["outcome"]["after"]
    names = [c["name"] for c in after["spec"]["containers"]]
    assert names == ["base", "log-shipper"]
    assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in after["spec"]["containers"])
    assert after["metadata"]["labels"]["team"] == "analytics"  # the operator's labels win over the template's


def test_executor_pods_come_from_the_template_and_the_pod_override(scanned):
    _, document = scanned
    executor = rows(document, "kubernetes_executor")
    override = executor[("executor_scan", "with_override", "kubernetes_executor", -1)]["outcome"]["before"]
    assert override["metadata"]["labels"]["cost-center"] == "analytics"  # executor_config pod_override
    assert override["metadata"]["labels"]["team"] == "data-platform"  # pod template file
    assert override["metadata"]["labels"]["kubernetes_executor"] == "True"
    base = override["spec"]["containers"][0]
    assert base["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi"}}
    assert base["imagePullPolicy"] == "IfNotPresent"
    assert override["spec"]["serviceAccountName"] == "airflow-worker"
    # every task of both DAGs runs in a worker pod, except the one assigned to another executor
    tasks = {(k[0], k[1]) for k in executor}
    assert ("kpo_scan", "list_shards") not in tasks
    assert {("executor_scan", "default_worker"), ("kpo_scan", "plain"), ("kpo_scan", "mapped")} <= tasks
    assert executor[("kpo_scan", "mapped", "kubernetes_executor", 0)]["outcome"]["airflow"]["map_index"] == 0


def test_the_process_wide_hook_is_left_as_it_was(scanned):
    from airflow_opa_mutation import hook as hook_module
    from airflow_opa_mutation.cli.scan import RecordingHook

    assert not isinstance(hook_module._default, RecordingHook)


def test_text_output(library_opa):
    result = scan(str(DAGS), "--url", library_opa.url, "--pod-template-file", str(WORKER_TEMPLATE),
                  "--color", "never")
    assert result.exit_code == 1
    out = result.stdout
    assert "kpo_scan" in out and "executor_scan" in out
    assert '[deny_privileged] container "base" is privileged' in out
    assert "broken_dag.py: ModuleNotFoundError: No module named 'module_that_does_not_exist'" in out
    assert "2 DAG(s), 15 pod(s): 2 would be denied, 0 could not be built or evaluated" in out


def test_launcher_filter(library_opa):
    document = json.loads(scan(str(DAGS), "--url", library_opa.url, "--launcher", "kpo", "-o", "json").stdout)
    assert {t["launcher"] for t in document["tasks"]} == {"kubernetes_pod_operator"}
    document = json.loads(scan(str(DAGS), "--url", library_opa.url, "--launcher", "executor", "-o", "json").stdout)
    assert {t["launcher"] for t in document["tasks"]} == {"kubernetes_executor"}
    minimal = [t for t in document["tasks"] if t["notes"]]
    assert minimal and "minimal template" in minimal[0]["notes"][0]  # no --pod-template-file, none configured


def test_a_clean_folder_exits_0(library_opa, tmp_path):
    (tmp_path / "clean.py").write_text(
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator\n"
        "from airflow.sdk import DAG\n\n"
        "with DAG('clean', schedule=None):\n"
        "    KubernetesPodOperator(task_id='run', name='run', image='ghcr.io/example/job:1.0.0', namespace='data',\n"
        "                          kubernetes_conn_id=None)\n"
    )
    result = scan(str(tmp_path), "--url", library_opa.url, "--launcher", "kpo", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["mutated"] == 1


def test_with_local_policies(tmp_path):
    """--policies starts the pinned OPA for the scan."""
    (tmp_path / "clean.py").write_text((DAGS / "executor_tasks.py").read_text())
    result = scan(str(tmp_path), "--policies", str(Path(__file__).resolve().parents[1] / "cli" / "library"),
                  "--pod-template-file", str(WORKER_TEMPLATE), "-o", "json")
    document = json.loads(result.stdout)
    assert result.exit_code == 0, result.output  # the test library denies only privileged containers
    assert {t["status"] for t in document["tasks"]} == {"mutated"}
    assert all(t["policies"] == ["token_off"] for t in document["tasks"])  # the template sets team already
