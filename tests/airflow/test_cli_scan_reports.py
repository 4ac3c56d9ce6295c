"""`scan --output html|junit|sarif`: the reports of a real scan (real Airflow builds the pods, the shipped
library judges them in a real OPA), the HTML page opened in a real headless Chromium, JUnit and SARIF
validated against their published schemas (scripts/install-schemas). The counts every report shows equal `--output json`'s."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from airflow_opa_mutation.cli import cli

from ..conftest import schema
from ..report_checks import ARTIFACTS, ROOT, Elements, XsdSubset, render, screenshot

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).resolve().parent / "dags_scan"
WORKER_TEMPLATE = DAGS / "templates" / "worker.yaml"
STATUSES = ("mutated", "unchanged", "denied", "failed", "error", "skipped")


def scan(*args: str):
    return CliRunner().invoke(cli, ["scan", *args], catch_exceptions=False, env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def reports(library_opa, tmp_path_factory):
    """One scan of tests/airflow/dags_scan per format: json on stdout (the reference), html and sarif into
    --report files (with the text table on stdout), junit on stdout."""
    out = tmp_path_factory.mktemp("reports")
    common = [str(DAGS), "--url", library_opa.url, "--pod-template-file", str(WORKER_TEMPLATE)]
    document = json.loads(scan(*common, "-o", "json").stdout)
    html_run = scan(*common, "-o", "html", "--report", str(out / "scan.html"), "--color", "never")
    junit_run = scan(*common, "-o", "junit")
    sarif_run = scan(*common, "-o", "sarif", "--report", str(out / "scan.sarif"))
    json_run = scan(*common, "-o", "json", "--report", str(out / "scan.json"))
    return {"json": document, "html": html_run, "junit": junit_run, "sarif": sarif_run, "json_file": json_run,
            "dir": out}


def expected_policy_counts(document):
    """Per policy, from the JSON document: pods mutated, ops, pods denied, pods warned."""
    counts: dict[str, Counter] = {}
    for task in document["tasks"]:
        for policy in task["policies"]:
            counts.setdefault(policy, Counter())["mutated"] += 1
        for op in (task["outcome"] or {}).get("ops", []):
            counts.setdefault(op["policy"], Counter())["ops"] += 1
        for kind in ("deny", "warn"):
            for policy in {m["policy"] for m in task[kind]}:
                counts.setdefault(policy, Counter())[kind] += 1
    return {p: [c["mutated"], c["ops"], c["deny"], c["warn"], 0] for p, c in counts.items()}


def test_html_report_in_a_real_browser_shows_the_json_counts(reports):
    document, run = reports["json"], reports["html"]
    assert run.exit_code == document["exit_code"] == 1
    assert "2 DAG(s), 15 pod(s): 2 would be denied" in run.stdout  # --report: people still get the text
    page = reports["dir"] / "scan.html"
    rendered = render(page)
    assert rendered.console == []  # no error, no CSP violation, nothing logged
    dom = Elements(rendered.dom)
    assert dom.text_by_id["errors"] == ""  # window.onerror, console.error and CSP violations land here
    for status in STATUSES:
        assert dom.text_by_id[f"count-{status}"] == str(document["summary"][status]), status
    assert dom.text_by_id["count-pods"] == str(len(document["tasks"]))
    assert dom.text_by_id["count-dags"] == str(len(document["dags"]))
    assert dom.text_by_id["count-import-errors"] == str(len(document["import_errors"]))
    # The page's script counted its rows again; the numbers it shows are what it has.
    recount = {s: n for s, n in document["summary"].items() if n}
    assert json.loads(dom.text_by_id["self-check"]) == recount
    assert dom.text_by_id["shown"] == f"{len(document['tasks'])} of {len(document['tasks'])} pods shown"
    shown = {
        html.unescape(policy): [int(n) for n in re.findall(r'<td class="n">(\d+)</td>', cells)]
        for policy, cells in re.findall(r'<tr data-policy="([^"]*)">(.*?)</tr>', rendered.dom)
    }
    assert shown == expected_policy_counts(document)
    # Every task pod is there once, denied ones open with their messages.
    rows = [a for a in dom.tags("details") if "task" in (a.get("class") or "")]
    assert Counter(a["data-status"] for a in rows) == Counter(t["status"] for t in document["tasks"])
    assert '[deny_privileged] container "base" is privileged' in dom.text
    assert "+    securityContext:" in dom.text  # mutations as diffs
    # Self-contained: nothing to fetch, and the CSP forbids fetching anyway.
    markup = page.read_text()
    assert not re.search(r"""(?:src|href)\s*=|@import|url\(|https?://(?!docs\.oasis)""", markup.split("<body>")[1])
    assert "default-src 'none'" in html.unescape(markup)
    shot = screenshot(page, ARTIFACTS / "scan-report.png", 1280, 1600, fragment="#expand-all")
    assert shot.stat().st_size > 50_000


def test_html_filter(reports):
    """The filter in the browser: #q= fills it, as typing would; only matching pods and their DAGs stay."""
    page = reports["dir"] / "scan.html"
    rendered = render(page, fragment="#q=deny_privileged%20kpo")
    assert rendered.console == []
    dom = Elements(rendered.dom)
    assert dom.text_by_id["shown"] == f"1 of {len(reports['json']['tasks'])} pods shown"
    visible = [a for a in dom.tags("details") if "hidden" not in a]
    assert [a["data-status"] for a in visible] == ["denied"]
    sections = {"hidden" in a for a in dom.tags("section")}
    assert sections == {True, False}  # executor_scan has no match: hidden as a whole


def test_junit_report_matches_the_xsd_and_the_json(reports):
    document, run = reports["json"], reports["junit"]
    assert run.exit_code == 1
    root = ET.fromstring(run.stdout)
    XsdSubset(schema("junit-10.xsd")).validate(root)
    cases = [c for s in root.findall("testsuite") if s.get("name") != "import errors" for c in s.findall("testcase")]
    assert len(cases) == len(document["tasks"])
    failures = {(c.get("classname"), c.get("name")): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failures) == {("kpo_scan", "privileged (kpo)"), ("executor_scan", "host_pid (executor)")}
    text = failures[("kpo_scan", "privileged (kpo)")].text
    assert '[deny_privileged] container "base" is privileged' in text and "[pod_security]" in text
    assert root.get("failures") == str(document["summary"]["denied"])
    assert len(root.findall("testsuite/testcase/skipped")) == document["summary"]["skipped"] + len(
        document["import_errors"])


def test_sarif_report_matches_the_schema_and_the_json(reports):
    document, run = reports["json"], reports["sarif"]
    assert run.exit_code == 1 and "would be denied" in run.stdout
    sarif = json.loads((reports["dir"] / "scan.sarif").read_text(encoding="utf-8"))
    sarif_schema = json.loads(schema("sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(sarif_schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(sarif)
    [run_] = sarif["runs"]
    results = run_["results"]
    by_level = Counter(r["level"] for r in results if r["ruleId"] != "import-error")
    assert by_level["error"] == sum(len(t["deny"]) for t in document["tasks"])
    assert by_level["warning"] == sum(len(t["warn"]) for t in document["tasks"])
    assert {r["id"] for r in run_["tool"]["driver"]["rules"]} >= {"deny_privileged", "deny_host_namespaces"}
    [privileged] = [r for r in results if r["ruleId"] == "deny_privileged"]
    location = privileged["locations"][0]["physicalLocation"]
    base = Path(run_["originalUriBaseIds"]["%SRCROOT%"]["uri"].removeprefix("file://"))
    dag_file = base / location["artifactLocation"]["uri"]
    assert dag_file.resolve() == (DAGS / "kpo_tasks.py").resolve()
    line = dag_file.read_text().splitlines()[location["region"]["startLine"] - 1]
    assert 'task_id="privileged"' in line


def test_json_report_file_is_the_json_document(reports):
    """--output json is unchanged; with --report the same document goes to the file, the text to stdout."""
    document, run = reports["json"], reports["json_file"]
    written = json.loads((reports["dir"] / "scan.json").read_text(encoding="utf-8"))
    assert run.exit_code == 1 and "2 DAG(s), 15 pod(s)" in run.stdout
    assert set(written) == set(document) and written["summary"] == document["summary"]
    assert [(t["dag_id"], t["task_id"], t["launcher"], t["map_index"], t["status"], t["deny"]) for t in written["tasks"]] == [
        (t["dag_id"], t["task_id"], t["launcher"], t["map_index"], t["status"], t["deny"]) for t in document["tasks"]]
    assert "exemptions" not in document["tasks"][0]  # the reports add them, the JSON schema's rows stay as they were


def test_report_needs_a_document_format(library_opa, tmp_path):
    result = scan(str(DAGS), "--url", library_opa.url, "--report", str(tmp_path / "x"))
    assert result.exit_code == 2 and "--report needs --output json, html, junit or sarif" in result.output


HOSTILE_DAG = '''
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

SCRIPT = "<script>document.title='pwned'</script>"
IMG = '"><img src=x onerror="document.title=1">'

with DAG("hostile", schedule=None):
    KubernetesPodOperator(
        task_id="run", name="run", namespace="data", kubernetes_conn_id=None,
        image="registry.example/" + SCRIPT + IMG + ":latest",
        annotations={"note": IMG + SCRIPT, "api-token": "hunter2-s3cr3t"},
        labels={"team": "analytics"},
        arguments=["--password=hunter2-s3cr3t", SCRIPT],
        env_vars={"DB_PASSWORD": "hunter2-s3cr3t"},
    )
'''


def test_a_hostile_dag_renders_as_text_and_leaks_no_secret(library_opa, tmp_path):
    """XSS from a DAG author into the reviewer's browser: image, annotations, args and an import error
    carry markup; the pod carries credentials in args, env and an annotation."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hostile.py").write_text(HOSTILE_DAG)
    (dags / "hostile_import.py").write_text(  # "airflow" and "dag" in it, or DagBag's safe mode skips it
        "# an airflow dag file\nraise ImportError(\"<script>document.title='pwned'</script><img src=x onerror=alert(1)>\")\n")
    page = tmp_path / "report.html"
    result = scan(str(dags), "--url", library_opa.url, "--launcher", "kpo", "-o", "html", "--report", str(page))
    assert result.exit_code in (0, 1), result.output
    markup = page.read_text()
    assert markup.count("<script") == 1 and "<img" not in markup
    assert "hunter2" not in markup
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in markup
    rendered = render(page)
    assert rendered.console == []
    dom = Elements(rendered.dom)
    assert dom.tags("img") == [] and len(dom.tags("script")) == 1 and dom.text_by_id["errors"] == ""
    assert not [name for _, attrs in dom.elements for name in attrs if name.startswith("on")]
    [title] = re.findall(r"<title>(.*?)</title>", rendered.dom, re.S)
    assert html.unescape(title) == f"airflow-opa-mutation scan: {dags}"
    assert "registry.example/<script>document.title='pwned'</script>" in dom.text  # shown, as text
    assert "ImportError: <script>document.title='pwned'</script><img src=x onerror=alert(1)>" in dom.text
    screenshot(page, ARTIFACTS / "scan-report-hostile-dag.png")


def test_the_docs_show_a_screenshot_of_the_report():
    """README and policies/README.md show docs/scan-report.png: a screenshot of this module's report."""
    assert (ROOT / "docs" / "scan-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for readme in ("README.md", "policies/README.md"):
        assert "scan-report.png" in (ROOT / readme).read_text(), readme
