"""``[opa_mutation] parse_time_check``: the real DAG processor (``airflow dag-processor --num-runs 1``) parses a
folder with a KubernetesPodOperator DAG the shipped library denies (a privileged container) and one it lets
through, asking a real OPA; the import error is read back through the real API server (``GET
/api/v2/importErrors``). OPA down: no import error, a warning in the DAG processor's log, the DAG parsed.

The cache, the default (off) and the task-process guard are checked on the DAG processor's own parsing
function (``airflow.dag_processing.processor._parse_file``) run in a fresh interpreter: the same code the DAG
processor's child runs, without the ~20 s of a whole DAG processor per case.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from airflow_opa_mutation._parse_check import TIMEOUT as _TIMEOUT
from airflow_opa_mutation.cli._local_opa import free_port

from .conftest import airflow_env, run_airflow

pytestmark = pytest.mark.airflow

AIRFLOW = str(Path(sys.executable).with_name("airflow"))

DENIED_DAG = """\
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

with DAG("parse_denied", schedule=None):
    KubernetesPodOperator(task_id="plain", name="dbt", image="ghcr.io/example/dbt:1.8.2", namespace="data",
                          kubernetes_conn_id=None)
    KubernetesPodOperator(task_id="docker_build", name="docker-build", image="ghcr.io/example/builder:3.1.0",
                          namespace="data", kubernetes_conn_id=None,
                          container_security_context={"privileged": True})
    KubernetesPodOperator(task_id="sniffer", name="sniffer", image="ghcr.io/example/tcpdump:4.99.4",
                          namespace="data", kubernetes_conn_id=None, hostnetwork=True)
"""

FINE_DAG = """\
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

with DAG("parse_fine", schedule=None):
    KubernetesPodOperator(task_id="transform", name="dbt", image="ghcr.io/example/dbt:1.8.2", namespace="data",
                          kubernetes_conn_id=None)
"""

DENY_MESSAGES = ('[deny_privileged] container "base" is privileged',
                 '[pod_security] violates PodSecurity "baseline:latest": privileged')


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A metadata DB after ``airflow db migrate`` (~10 s), copied into each case's AIRFLOW_HOME."""
    home = tmp_path_factory.mktemp("parse-check-db")
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=airflow_env(home, AIRFLOW__CORE__LOAD_EXAMPLES="False"),
                          cwd=home, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return home / "airflow.db"


def make_home(tmp_path: Path, migrated_db: Path, opa_url: str, **extra: str) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "denied_dag.py").write_text(DENIED_DAG)
    (home / "dags" / "fine_dag.py").write_text(FINE_DAG)
    shutil.copy(migrated_db, home / "airflow.db")
    env = airflow_env(home, AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
                      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True", AIRFLOW__OPA_MUTATION__URL=opa_url,
                      **extra)
    return home, env


def dag_processor(home: Path, env: dict[str, str]) -> str:
    """One pass of the real DAG processor over the DAG folder; its output."""
    done = subprocess.run([AIRFLOW, "dag-processor", "--num-runs", "1"], env=env, cwd=home, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def api_import_errors(home: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """``GET /api/v2/importErrors`` from the real API server (simple auth manager, all admins)."""
    port = free_port()
    server = subprocess.Popen([AIRFLOW, "api-server", "--port", str(port), "--apps", "core", "--workers", "1"],
                              env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        for _ in range(600):
            assert server.poll() is None, "the API server exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/importErrors", timeout=5) as response:
                    errors: list[dict[str, Any]] = json.load(response)["import_errors"]
                    return errors
            except OSError:
                time.sleep(0.5)
        raise AssertionError("the API server did not answer")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def parsed_dags(home: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(home / "airflow.db") as db:
        return {row[0] for row in db.execute("SELECT dag_id FROM serialized_dag")}


def processor_log(home: Path, filename: str) -> str:
    return "".join(path.read_text() for path in (home / "logs" / "dag_processor").rglob(f"{filename}.log"))


def test_a_denied_task_is_an_import_error_through_the_rest_api_and_the_fine_dag_is_parsed(
        tmp_path, migrated_db, library_opa):
    home, env = make_home(tmp_path, migrated_db, library_opa.url, AIRFLOW__OPA_MUTATION__PARSE_TIME_CHECK="True")
    dag_processor(home, env)
    errors = api_import_errors(home, env)
    assert [error["filename"] for error in errors] == ["denied_dag.py"]
    trace = errors[0]["stack_trace"]
    assert trace.startswith("AirflowClusterPolicyViolation: ")
    assert "task 'docker_build' of DAG 'parse_denied' would be denied by policy" in trace
    for message in DENY_MESSAGES:
        assert message in trace
    # Airflow stops at the first violation: the DAG's later denied tasks are named in the same error.
    sniffer = trace.split("task 'sniffer' of DAG 'parse_denied' would be denied by policy\n", 1)[1]
    assert "[deny_host_namespaces]" in sniffer and "[deny_privileged]" not in sniffer
    assert "'plain'" not in trace
    assert parsed_dags(home) == {"parse_fine"}


def test_opa_down_leaves_parsing_alone_with_a_warning_in_the_dag_processor_log(
        tmp_path, migrated_db, stopped_opa_url):
    home, env = make_home(tmp_path, migrated_db, stopped_opa_url, AIRFLOW__OPA_MUTATION__PARSE_TIME_CHECK="True")
    dag_processor(home, env)
    assert parsed_dags(home) == {"parse_denied", "parse_fine"}
    import sqlite3

    with sqlite3.connect(home / "airflow.db") as db:
        assert db.execute("SELECT filename, stacktrace FROM import_error").fetchall() == []
    log = processor_log(home, "denied_dag.py")
    assert "opa_mutation parse_time_check: OPA could not be asked" in log
    assert "the hook still decides when the pod is launched" in log


#: The DAG processor's parsing function on one file, twice; how often OPA was asked, what the file gave.
PARSE_TWICE = """
import os, time
from pathlib import Path
import structlog
from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
from airflow_opa_mutation.hook import MutationHook

asked = []
evaluate = MutationHook.evaluate
def counting(self, pod, **kwargs):
    asked.append(1)
    return evaluate(self, pod, **kwargs)
MutationHook.evaluate = counting

folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
runs = []
for _ in range(2):
    before, started = len(asked), time.perf_counter()
    result = _parse_file(DagFileParseRequest(file=str(folder / "denied_dag.py"), bundle_path=folder,
                                             bundle_name="dags-folder"), structlog.get_logger())
    runs.append({"asked": len(asked) - before, "seconds": time.perf_counter() - started,
                 "import_errors": result.import_errors, "dags": [d.dag_id for d in result.serialized_dags]})
report({"runs": runs, "records": RECORDS})
"""


def test_re_parsing_an_unchanged_file_asks_opa_nothing(tmp_path, migrated_db, library_opa):
    _, env = make_home(tmp_path, migrated_db, library_opa.url, AIRFLOW__OPA_MUTATION__PARSE_TIME_CHECK="True")
    first, second = run_airflow(PARSE_TWICE, env)["runs"]
    print(f"parse of 3 KubernetesPodOperator tasks: {first['seconds'] * 1000:.0f} ms asking OPA (imports included), "
          f"{second['seconds'] * 1000:.0f} ms from the cache")
    assert first["asked"] == 3 and second["asked"] == 0
    assert first["import_errors"] == second["import_errors"]
    assert "task 'docker_build'" in first["import_errors"]["denied_dag.py"]


def test_the_check_is_off_by_default(tmp_path, migrated_db, library_opa):
    _, env = make_home(tmp_path, migrated_db, library_opa.url)
    run = run_airflow(PARSE_TWICE, env)["runs"][0]
    assert run == {**run, "asked": 0, "import_errors": {}, "dags": ["parse_denied"]}


def test_a_task_process_is_never_checked(tmp_path, migrated_db, library_opa):
    """The task runner's marks (its AIRFLOW_CTX_* environment; in_task_process() is true) turn the check off,
    even inside the DAG processor's parsing function."""
    _, env = make_home(tmp_path, migrated_db, library_opa.url, AIRFLOW__OPA_MUTATION__PARSE_TIME_CHECK="True",
                          AIRFLOW_CTX_DAG_ID="parse_denied")
    code = "from airflow_opa_mutation._airflow_context import in_task_process\nassert in_task_process()\n"
    run = run_airflow(code + PARSE_TWICE, env)["runs"][0]
    assert run == {**run, "asked": 0, "import_errors": {}, "dags": ["parse_denied"]}


DAGBAG_OUTSIDE_THE_DAG_PROCESSOR = """
import os
from airflow.dag_processing.dagbag import DagBag
from airflow_opa_mutation.hook import MutationHook

asked = []
evaluate = MutationHook.evaluate
MutationHook.evaluate = lambda self, pod, **kwargs: asked.append(1) or evaluate(self, pod, **kwargs)
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
report({"asked": len(asked), "import_errors": bag.import_errors, "dags": sorted(bag.dags)})
"""


def test_parsing_outside_the_dag_processor_is_never_checked(tmp_path, migrated_db, library_opa):
    """What the task runner, the scheduler and ``airflow dags`` commands do: a DagBag, no ``_parse_file``."""
    _, env = make_home(tmp_path, migrated_db, library_opa.url, AIRFLOW__OPA_MUTATION__PARSE_TIME_CHECK="True")
    result = run_airflow(DAGBAG_OUTSIDE_THE_DAG_PROCESSOR, env)
    assert (result["asked"], result["import_errors"], result["dags"]) == (0, {}, ["parse_denied", "parse_fine"])


def test_an_opa_that_never_answers_costs_one_short_timeout_per_file(tmp_path, migrated_db):
    """A listener that accepts connections and never answers (OPA hung): with ``timeout = 30`` the check
    still gives up after its own short timeout on the first task, warns, and leaves the rest unchecked."""
    import socket

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        _, env = make_home(tmp_path, migrated_db, url, AIRFLOW__OPA_MUTATION__PARSE_TIME_CHECK="True",
                           AIRFLOW__OPA_MUTATION__TIMEOUT="30")
        code = "from airflow_opa_mutation import _parse_check\n"
        result = run_airflow(code + PARSE_TWICE.replace("range(2)", "range(1)").replace(
            'report({"runs": runs, "records": RECORDS})',
            'report({"runs": runs, "records": RECORDS, "timeout": _parse_check._settings.timeout})'), env)
    [run] = result["runs"]
    print(f"parse with a hung OPA (timeout = 30): {run['seconds']:.1f} s")
    assert run == {**run, "asked": 1, "import_errors": {}, "dags": ["parse_denied"]}
    assert result["timeout"] == _TIMEOUT
    assert any(level == "WARNING" and "OPA could not be asked" in message for level, message in result["records"])
