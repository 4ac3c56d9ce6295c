"""`scan`'s reports (HTML, JUnit, SARIF) from a hostile scan document: every string a DAG author controls
carries markup meant to run in the security reviewer's browser, and the pods carry credentials.

Airflow refuses such dag and task ids itself (KEY_REGEX), but the report must not depend on that: ids,
messages (which policies build from images and annotations), notes, errors, import errors and exemptions
all render as text. Checked on the markup and in a real headless Chromium (tests/report_checks.py).
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema

from airflow_opa_mutation.cli._reports import html_report, junit_report, policy_counts, sarif_report

from ..conftest import schema
from ..report_checks import ARTIFACTS, Elements, XsdSubset, render, screenshot

SCRIPT = "<script>document.title='pwned';window.pwned=1</script>"
IMG = '"><img src=x onerror="document.title=\'pwned\'">'
SECRET = "hunter2-s3cr3t"


def _pod(image: str, *, patched: bool) -> dict:
    container = {
        "name": "base",
        "image": image,
        "args": ["run", f"--password={SECRET}", "--api-key", SECRET],
        "env": [{"name": "DB_PASSWORD", "value": SECRET}],
    }
    annotations = {"note": IMG, "api-token": SECRET, "checksum": f"Bearer {SECRET}"}
    if patched:  # changes next to the secrets, so that the diff's context shows where they were
        container["securityContext"] = {"allowPrivilegeEscalation": False}
        container["args"].append("--verbose")
        annotations["owner"] = "data"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {"containers": [container]},
    }


def _task(dag_id: str, task_id: str, status: str, **extra) -> dict:
    before = _pod(f"ghcr.io/x/{SCRIPT}:1", patched=False)
    after = _pod(f"ghcr.io/x/{SCRIPT}:1", patched=status == "mutated")
    row = {
        "dag_id": dag_id, "task_id": task_id, "launcher": "kubernetes_pod_operator", "map_index": -1,
        "status": status, "ops": 1 if status == "mutated" else 0,
        "policies": ["security_context"] if status == "mutated" else [],
        "warn": [], "deny": [], "error": None, "notes": [],
        "outcome": {"ops": [{"index": 0, "policy": "security_context", "op": "add", "path": "/x"}]
                    if status == "mutated" else [],
                    "before": before, "after": after if status != "denied" else None, "decision_id": "d-1"},
    }
    row.update(extra)
    return row


def hostile_document() -> dict:
    tasks = [
        _task(f"dag{SCRIPT}", f"task{IMG}", "mutated",
              warn=[{"policy": "image_tag", "msg": f"image ghcr.io/x/{SCRIPT} has no digest {IMG}"}],
              exemptions=[{"policy": "deny_privileged", "reason": f"legacy {SCRIPT}", "ticket": "SEC-1",
                           "expires": "2027-01-01"}]),
        _task(f"dag{SCRIPT}", "denied", "denied",
              deny=[{"policy": "deny_privileged", "msg": f'container "{IMG}" is privileged'},
                    {"policy": None, "msg": f"unattributed {SCRIPT}"}]),
        _task("plain", "broken\x1b\x00", "error", error=f"build failed: {SCRIPT}", outcome=None),
        _task("plain", "later", "skipped", notes=[f"mapped over XCom {IMG}"], outcome=None),
    ]
    return {
        "schema_version": 1, "command": "scan", "exit_code": 1, "dags_folder": f"/dags/{IMG}",
        "dags": [f"dag{SCRIPT}", "plain"],
        "import_errors": [{"file": f"/dags/{SCRIPT}.py", "error": f"Traceback\nImportError: {SCRIPT}{IMG}"}],
        "tasks": tasks,
        "summary": {"mutated": 1, "unchanged": 0, "denied": 1, "failed": 0, "error": 1, "skipped": 1},
    }


def test_html_renders_dag_author_text_as_text(tmp_path: Path) -> None:
    document = hostile_document()
    page = tmp_path / "report.html"
    page.write_text(html_report(document, {f"dag{SCRIPT}": f"/dags/{SCRIPT}.py"}), encoding="utf-8")
    markup = page.read_text()
    # On the markup: one script element (the page's own), no element a payload tried to open.
    assert markup.count("<script") == 1 and "<img" not in markup
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;" in markup
    assert "&quot;&gt;&lt;img src=x onerror=" in markup
    assert SECRET not in markup  # args, env and annotations redacted as in the hook's dry-run diff

    # In the browser: no payload ran or became an element, nothing reached the console, and the payloads
    # are visible as the text they are.
    rendered = render(page)
    assert rendered.console == []
    dom = Elements(rendered.dom)
    assert dom.tags("img") == [] and len(dom.tags("script")) == 1
    assert dom.text_by_id["errors"] == ""
    assert dom.text_by_id.get("self-check") == json.dumps({"mutated": 1, "denied": 1, "error": 1, "skipped": 1},
                                                          separators=(",", ":"))
    [title] = re.findall(r"<title>(.*?)</title>", rendered.dom, re.S)
    assert html.unescape(title) == f"airflow-opa-mutation scan: /dags/{IMG}"  # document.title never became 'pwned'
    assert f"dag{SCRIPT}" in dom.text and f"task{IMG}" in dom.text
    assert f'container "{IMG}" is privileged' in dom.text and f"legacy {SCRIPT}" in dom.text
    assert f"ImportError: {SCRIPT}{IMG}" in dom.text and f"mapped over XCom {IMG}" in dom.text
    assert not [name for _, attrs in dom.elements for name in attrs if name.startswith("on")]  # no handler
    screenshot(page, ARTIFACTS / "scan-report-hostile.png")


def test_html_shows_redacted_diffs_exemptions_and_per_policy_counts(tmp_path: Path) -> None:
    document = hostile_document()
    markup = html_report(document)
    dom = Elements(markup)
    assert '+      allowPrivilegeEscalation: false' in dom.text
    assert "--password=<redacted>" in dom.text and "<redacted: 1 entries>" in dom.text
    assert "checksum: <redacted>" in dom.text  # a bearer credential under an innocent key
    assert "policy: deny_privileged, reason: legacy" in dom.text and "ticket: SEC-1, expires: 2027-01-01" in dom.text
    rows = {attrs["data-policy"] for attrs in dom.tags("tr") if attrs.get("data-policy")}
    assert rows == {"security_context", "image_tag", "deny_privileged", "unattributed"}
    assert policy_counts(document["tasks"])["deny_privileged"] == {
        "mutated": 0, "ops": 0, "deny": 1, "warn": 0, "exempted": 1}
    for status, count in document["summary"].items():
        assert dom.text_by_id[f"count-{status}"] == str(count)


def test_junit_is_valid_against_the_xsd_and_keeps_text_as_text() -> None:
    text = junit_report(hostile_document())
    root = ET.fromstring(text)  # XML 1.0 parses: the control characters of a task id were replaced
    XsdSubset(schema("junit-10.xsd")).validate(root)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {f"dag{SCRIPT}", "plain", "import errors"}
    dag = suites[f"dag{SCRIPT}"]
    assert (dag.get("tests"), dag.get("failures"), dag.get("errors")) == ("2", "1", "0")
    [failure] = dag.findall("testcase/failure")
    assert failure.get("message") == f'container "{IMG}" is privileged'
    assert failure.text == f'[deny_privileged] container "{IMG}" is privileged\n[unattributed] unattributed {SCRIPT}'
    plain = {c.get("name"): c for c in suites["plain"].findall("testcase")}
    assert plain["broken\ufffd\ufffd (kpo)"].find("error") is not None
    assert plain["later (kpo)"].find("skipped") is not None
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")


def test_the_xsd_checker_refuses_what_the_schema_refuses() -> None:
    """The home-made validator is worth something only if it says no: three documents junit-10.xsd refuses."""
    checker = XsdSubset(schema("junit-10.xsd"))
    for bad in (
        '<testsuites><testsuite name="a" tests="1" errors="0"/></testsuites>',  # failures is required
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0" colour="x"/></testsuites>',
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0"><failure/></testsuite></testsuites>',
        '<testsuites time="1.2.3"/>',  # SUREFIRE_TIME pattern
    ):
        try:
            checker.validate(ET.fromstring(bad))
        except AssertionError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_sarif_is_valid_sarif_2_1_0() -> None:
    sarif = json.loads(sarif_report(hostile_document(), {f"dag{SCRIPT}": "/dags/dag.py"}))
    sarif_schema = json.loads(schema("sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(sarif_schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(sarif)
    [run] = sarif["runs"]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    levels = [(r["ruleId"], r["level"]) for r in run["results"]]
    assert levels == [("image_tag", "warning"), ("deny_privileged", "error"), ("unattributed", "error"),
                      ("scan-error", "error"), ("import-error", "warning")]
    assert all(rules[r["ruleIndex"]] == r["ruleId"] for r in run["results"])
    located = run["results"][1]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert located == {"uri": "file:///dags/dag.py"}
