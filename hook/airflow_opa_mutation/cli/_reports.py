"""``scan``'s reports for people and CI systems: one HTML file, JUnit XML and SARIF 2.1.0.

Each is made from the ``--output json`` document of the scan (the same rows, so the same counts). Every
string in it may come from a DAG author (dag and task ids, images, annotations, import errors, the
messages policies build from them) and lands in a security reviewer's browser or a CI system's page:

- HTML: every such string goes through :func:`html.escape` (text and attribute values); the page carries a
  Content-Security-Policy that lets only its own script and style run (by hash) and loads nothing, so even
  a missed escape could not run a script or reach the network. Pods appear only as redacted diffs
  (``_redact``, the same redaction as the hook's dry-run diff), never as documents.
- XML: built with ElementTree (which escapes), after removing the characters XML 1.0 cannot carry.
- SARIF: JSON, which needs no escaping; no pod documents in it either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import _redact
from .._version import __version__
from ._diff import yaml_diff

STATUSES = ("mutated", "unchanged", "denied", "failed", "error", "skipped")
#: SARIF rule ids for what is not a policy's verdict.
RULE_UNATTRIBUTED = "unattributed"
RULE_SCAN_ERROR = "scan-error"
RULE_IMPORT_ERROR = "import-error"
INFORMATION_URI = "https://github.com/airflow-opa-mutation/airflow-opa-mutation"


def launcher_name(launcher: str) -> str:
    return "kpo" if launcher == "kubernetes_pod_operator" else "executor"


def pod_name(task: Mapping[str, Any]) -> str:
    """``task_id [launcher]`` with the map index when there is one: unique within a DAG."""
    index = f"[{task['map_index']}]" if task["map_index"] >= 0 else ""
    return f"{task['task_id']}{index} ({launcher_name(task['launcher'])})"


def exemptions_of(task: Mapping[str, Any]) -> list[Any]:
    """The exemptions a decision says it applied (a field of newer decisions), wherever the row carries them."""
    outcome = task.get("outcome") or {}
    found = task.get("exemptions") or outcome.get("exemptions") or []
    return list(found) if isinstance(found, list | tuple) else [found]


def exemption_text(exemption: Any) -> str:
    if dataclasses.is_dataclass(exemption) and not isinstance(exemption, type):
        exemption = dataclasses.asdict(exemption)
    if isinstance(exemption, Mapping):
        return ", ".join(f"{key}: {value}" for key, value in exemption.items() if value not in (None, ""))
    return str(exemption)


def exemption_key(exemption: Any) -> str:
    """What the per-policy table counts an exemption under: its policy when it names one."""
    if dataclasses.is_dataclass(exemption) and not isinstance(exemption, type):
        exemption = dataclasses.asdict(exemption)
    if isinstance(exemption, Mapping):
        policy = exemption.get("policy")
        return str(policy) if policy else "(global)"
    return "(global)"


def policy_counts(tasks: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per policy: pods it mutated, its ops, pods it denied, pods it warned about, exemptions used."""
    counts: dict[str, Counter[str]] = {}

    def count(policy: str | None, what: str, n: int = 1) -> None:
        counts.setdefault(policy or RULE_UNATTRIBUTED, Counter())[what] += n

    for task in tasks:
        outcome = task.get("outcome") or {}
        for policy in task.get("policies", []):
            count(policy, "mutated")
        for op in outcome.get("ops", []):
            count(op.get("policy"), "ops")
        for what in ("deny", "warn"):
            for policy in dict.fromkeys(m["policy"] for m in task.get(what, [])):
                count(policy, what)
        for exemption in exemptions_of(task):
            count(exemption_key(exemption), "exempted")
    return {
        policy: {what: c[what] for what in ("mutated", "ops", "deny", "warn", "exempted")}
        for policy, c in sorted(counts.items())
    }


def redacted_diff(outcome: Mapping[str, Any] | None) -> list[str]:
    """The pod's diff with its credentials redacted, as the hook's dry-run diff redacts them."""
    before, after = (outcome or {}).get("before"), (outcome or {}).get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    shown_before, shown_after = _redact.redact(before, after), _redact.redact(after, before)
    return yaml_diff(shown_before, shown_after, "pod (from Airflow)", "pod (after policy)", sort_keys=True)


# ---------------------------------------------------------------------------------------------------- HTML

_CSS = """
:root{--bg:#fff;--fg:#1b1f24;--mute:#57606a;--line:#d0d7de;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;
--pane:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header,main{padding:12px 24px}
header{border-bottom:1px solid var(--line);background:var(--pane)}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}
.meta{color:var(--mute);word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:90px;background:var(--bg)}
.card b{display:block;font-size:20px}
.card.denied b,.card.failed b,.card.error b{color:var(--bad)}.card.mutated b{color:var(--ok)}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--pane)}td.n{text-align:right;font-variant-numeric:tabular-nums}
.controls{display:flex;gap:8px;align-items:center;margin:10px 0;flex-wrap:wrap}
input[type=search]{width:28em;padding:4px 6px}
.dag{border:1px solid var(--line);border-radius:6px;margin:10px 0;padding:4px 12px}
.dag>h2 .sub{color:var(--mute);font-weight:normal;font-size:13px}
details.task{border-top:1px solid var(--line);padding:4px 0}
details.task>summary{cursor:pointer;list-style-position:outside}
.badge{display:inline-block;min-width:6.5em;text-align:center;border-radius:10px;padding:0 6px;
font-size:12px;font-weight:600;color:#fff;background:var(--mute)}
.badge.mutated{background:var(--ok)}.badge.denied,.badge.failed,.badge.error{background:var(--bad)}
.badge.unchanged{background:#6e7781}.badge.skipped{background:#afb8c1}
.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.small{color:var(--mute);font-size:12px}
ul.msgs{margin:4px 0;padding-left:20px}
li.deny{color:var(--bad)}li.warn{color:var(--warn)}
pre{background:var(--pane);border:1px solid var(--line);padding:6px 8px;overflow:auto;font-size:12px;
white-space:pre-wrap;word-break:break-all}
pre.diff span{display:block}
pre.diff .add{background:#dafbe1}pre.diff .del{background:#ffebe9}pre.diff .hunk{color:#0969da}
pre.diff .file{font-weight:600}
#errors:empty{display:none}
#errors{color:var(--bad)}
"""

_JS = """
(function(){
  var errors=document.getElementById('errors');
  function report(text){errors.textContent+=text+'\\n';}
  window.addEventListener('error',function(e){report('error: '+e.message);});
  document.addEventListener('securitypolicyviolation',function(e){report('csp: '+e.violatedDirective);});
  var consoleError=console.error;
  console.error=function(){report('console.error: '+Array.prototype.join.call(arguments,' '));
    return consoleError.apply(console,arguments);};
  var tasks=Array.prototype.slice.call(document.querySelectorAll('details.task'));
  var dags=Array.prototype.slice.call(document.querySelectorAll('section.dag'));
  var search=document.getElementById('filter'),status=document.getElementById('status');
  var shown=document.getElementById('shown');
  function apply(){
    var words=search.value.toLowerCase().split(/\\s+/).filter(Boolean),want=status.value,n=0;
    tasks.forEach(function(t){
      var text=t.getAttribute('data-search');
      var ok=(!want||(want==='failing'?t.getAttribute('data-failing')==='1':t.getAttribute('data-status')===want))
        &&words.every(function(w){return text.indexOf(w)>=0;});
      t.hidden=!ok;if(ok){n++;}
    });
    dags.forEach(function(d){d.hidden=!d.querySelector('details.task:not([hidden])');});
    shown.textContent=n+' of '+tasks.length+' pods shown';
  }
  search.addEventListener('input',apply);status.addEventListener('change',apply);
  var expand=document.getElementById('expand');
  function setOpen(open){tasks.forEach(function(t){t.open=open;});expand.textContent=open?'collapse all':'expand all';}
  expand.addEventListener('click',function(){setOpen(expand.textContent==='expand all');});
  // Links into the report: #expand-all opens every pod, #q=WORDS fills the filter (a value, never markup).
  if(location.hash==='#expand-all'){setOpen(true);}
  if(location.hash.indexOf('#q=')===0){search.value=decodeURIComponent(location.hash.slice(3));}
  // What the page shows, counted again from its rows: a check that the numbers agree (read by the tests).
  var counted={};
  tasks.forEach(function(t){var s=t.getAttribute('data-status');counted[s]=(counted[s]||0)+1;});
  Array.prototype.forEach.call(document.querySelectorAll('.card[data-status]'),function(c){
    var s=c.getAttribute('data-status'),v=parseInt(c.querySelector('b').textContent,10);
    if(v!==(counted[s]||0)){report('count mismatch: '+s+' card '+v+', rows '+(counted[s]||0));}
  });
  document.getElementById('self-check').textContent=JSON.stringify(counted);
  apply();
})();
"""


def _e(value: Any) -> str:
    """Text or attribute value: every character HTML gives a meaning to, escaped (quotes included)."""
    return html.escape(str(value), quote=True)


def _sha256(text: str) -> str:
    import base64

    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _messages(task: Mapping[str, Any]) -> str:
    items = [
        f'<li class="{kind}">{kind}: <span class="id">[{_e(m["policy"] or RULE_UNATTRIBUTED)}]</span>'
        f" {_e(m['msg'])}</li>"
        for kind in ("deny", "warn")
        for m in task.get(kind, [])
    ]
    return f'<ul class="msgs">{"".join(items)}</ul>' if items else ""


def _diff_html(lines: list[str]) -> str:
    if not lines:
        return ""
    spans = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        spans.append(f'<span class="{kind}">{_e(line) or " "}</span>')
    return f'<pre class="diff">{"".join(spans)}</pre>'


def _task_html(task: Mapping[str, Any]) -> str:
    status = task["status"]
    outcome = task.get("outcome") or {}
    policies = task.get("policies", [])
    searchable = [task["dag_id"], task["task_id"], launcher_name(task["launcher"]), status, *policies]
    searchable += [f"{m['policy']} {m['msg']}" for kind in ("deny", "warn") for m in task.get(kind, [])]
    searchable += [exemption_text(x) for x in exemptions_of(task)]
    failing = status in ("denied", "failed", "error")
    parts = [
        f'<details class="task" data-status="{_e(status)}" data-failing="{int(failing)}"'
        f' data-search="{_e(" ".join(searchable).lower())}"{" open" if failing else ""}>',
        f'<summary><span class="badge {_e(status)}">{_e(status)}</span> <span class="id">{_e(pod_name(task))}</span>'
        f' <span class="small">{task["ops"]} op(s){": " if policies else ""}{_e(", ".join(policies))}</span></summary>',
        _messages(task),
    ]
    if task.get("error"):
        parts.append(f"<p><b>{_e(status)}:</b> <span class='id'>{_e(task['error'])}</span></p>")
    parts += [f'<p class="small">note: {_e(note)}</p>' for note in task.get("notes", [])]
    exemptions = exemptions_of(task)
    if exemptions:
        items = "".join(f"<li>{_e(exemption_text(x))}</li>" for x in exemptions)
        parts.append(f'<p>exemptions applied:</p><ul class="msgs exemptions">{items}</ul>')
    if outcome.get("decision_id"):
        parts.append(f'<p class="small">decision id: <span class="id">{_e(outcome["decision_id"])}</span></p>')
    diff = redacted_diff(outcome)
    if not diff and outcome.get("ops"):  # a denied pod is not patched: its ops, without their values
        ops = "".join(
            f'<li><span class="id">{_e(op.get("op"))} {_e(op.get("path"))}</span> [{_e(op.get("policy"))}]</li>'
            for op in outcome["ops"]
        )
        parts.append(f'<p>ops the policies asked for (not applied):</p><ul class="msgs ops">{ops}</ul>')
    parts += [_diff_html(diff), "</details>"]
    return "".join(parts)


def _relative(path: str, folder: str) -> str:
    """A DAG file as the reviewer knows it: relative to the scanned folder when it is inside."""
    try:
        return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except (ValueError, OSError):
        return path


def _dag_html(dag_id: str, tasks: list[Mapping[str, Any]], dag_files: Mapping[str, str], folder: str) -> str:
    by_status = Counter(t["status"] for t in tasks)
    summary = ", ".join(f"{by_status[s]} {s}" for s in STATUSES if by_status[s])
    where = f' <span class="sub id">{_e(_relative(dag_files[dag_id], folder))}</span>' if dag_id in dag_files else ""
    rows = "".join(_task_html(t) for t in tasks)
    return (
        f'<section class="dag"><h2><span class="id">{_e(dag_id)}</span>{where}'
        f' <span class="sub">{len(tasks)} pod(s): {_e(summary)}</span></h2>{rows}</section>'
    )


def html_report(document: Mapping[str, Any], dag_files: Mapping[str, str] | None = None) -> str:
    """The scan as one self-contained HTML page: no network, no external resource, scripts only its own."""
    dag_files = dag_files or {}
    tasks: list[Mapping[str, Any]] = document["tasks"]
    summary = document["summary"]
    by_dag: dict[str, list[Mapping[str, Any]]] = {}
    for task in tasks:
        by_dag.setdefault(task["dag_id"], []).append(task)
    cards = [f'<div class="card"><b id="count-dags">{len(document["dags"])}</b>DAGs</div>']
    cards.append(f'<div class="card"><b id="count-pods">{len(tasks)}</b>pods</div>')
    cards += [
        f'<div class="card {s}" data-status="{s}"><b id="count-{s}">{summary.get(s, 0)}</b>{s}</div>' for s in STATUSES
    ]
    cards.append(
        f'<div class="card"><b id="count-import-errors">{len(document["import_errors"])}</b>import errors</div>'
    )
    policy_rows = "".join(
        f'<tr data-policy="{_e(policy)}"><td class="id">{_e(policy)}</td>'
        + "".join(f'<td class="n">{c[what]}</td>' for what in ("mutated", "ops", "deny", "warn", "exempted"))
        + "</tr>"
        for policy, c in policy_counts(tasks).items()
    )
    import_errors = "".join(
        f"<li><span class='id'>{_e(entry['file'])}</span><pre>{_e(entry['error'])}</pre></li>"
        for entry in document["import_errors"]
    )
    options = "".join(f'<option value="{s}">{s}</option>' for s in STATUSES)
    verdict = "nothing would be denied" if document["exit_code"] == 0 else "some pods would be denied or failed"
    body = f"""<header><h1>airflow-opa-mutation scan</h1>
<div class="meta">DAG folder <span class="id">{_e(document["dags_folder"])}</span> · {_e(verdict)}
 · exit status {int(document["exit_code"])} · airflow-opa-mutation {_e(__version__)}</div>
<div class="cards">{"".join(cards)}</div></header>
<main>
<pre id="errors"></pre>
<h2>Per policy</h2>
<table id="policies"><thead><tr><th>policy</th><th>pods mutated</th><th>ops</th><th>pods denied</th>
<th>pods warned</th><th>exemptions used</th></tr></thead><tbody>{policy_rows}</tbody></table>
{f"<h2>DAG files that failed to import (not scanned)</h2><ul>{import_errors}</ul>" if import_errors else ""}
<h2>Pods</h2>
<div class="controls"><input type="search" id="filter" placeholder="filter: dag, task, policy, message"
 aria-label="filter"><select id="status" aria-label="verdict"><option value="">every verdict</option>
<option value="failing">denied, failed or error</option>{options}</select>
<button type="button" id="expand">expand all</button><span id="shown" class="small"></span></div>
{"".join(_dag_html(dag_id, by_dag[dag_id], dag_files, document["dags_folder"]) for dag_id in sorted(by_dag))}
<pre id="self-check" hidden></pre>
</main>"""
    csp = (
        f"default-src 'none'; script-src 'sha256-{_sha256(_JS)}'; style-src 'sha256-{_sha256(_CSS)}'; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>airflow-opa-mutation scan: {_e(document["dags_folder"])}</title>
<style>{_CSS}</style></head>
<body>{body}<script>{_JS}</script></body></html>
"""


# ---------------------------------------------------------------------------------------------------- JUnit

#: What XML 1.0 cannot carry at all (not even escaped): control characters other than tab, LF and CR,
#: lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _lines(messages: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(f"[{m['policy'] or RULE_UNATTRIBUTED}] {m['msg']}" for m in messages)


def junit_report(document: Mapping[str, Any]) -> str:
    """JUnit XML: one test suite per DAG, one test case per task pod; a denied pod is a failure with every
    message, a pod that could not be built or evaluated an error, a skipped one skipped; warnings in
    ``system-out``. DAG files that failed to import are skipped cases of a suite of their own (they do not
    change the exit status either)."""
    root = ET.Element("testsuites", name="airflow-opa-mutation scan")
    by_dag: dict[str, list[Mapping[str, Any]]] = {}
    for task in document["tasks"]:
        by_dag.setdefault(task["dag_id"], []).append(task)
    totals = Counter[str]()
    for dag_id in sorted(by_dag):
        tasks = by_dag[dag_id]
        counts = Counter(t["status"] for t in tasks)
        failures, errors = counts["denied"], counts["failed"] + counts["error"]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_x(dag_id),
            tests=str(len(tasks)),
            failures=str(failures),
            errors=str(errors),
            skipped=str(counts["skipped"]),
        )
        totals.update(tests=len(tasks), failures=failures, errors=errors)
        for task in tasks:
            case = ET.SubElement(suite, "testcase", name=_x(pod_name(task)), classname=_x(dag_id))
            status = task["status"]
            if status == "denied":
                first = task["deny"][0]["msg"] if task["deny"] else "denied"
                failure = ET.SubElement(case, "failure", type="denied", message=_x(first))
                failure.text = _x(_lines(task["deny"]))
            elif status in ("failed", "error"):
                error = ET.SubElement(case, "error", type=status, message=_x(task.get("error") or status))
                error.text = _x(task.get("error") or "")
            elif status == "skipped":
                ET.SubElement(case, "skipped", message=_x("; ".join(task.get("notes", [])) or "skipped"))
            out = [_lines(task.get("warn", []))] if task.get("warn") else []
            if task.get("policies"):
                out.append(f"{status}: {task['ops']} op(s) by {', '.join(task['policies'])}")
            out += [f"exemption applied: {exemption_text(x)}" for x in exemptions_of(task)]
            if out:
                ET.SubElement(case, "system-out").text = _x("\n".join(out))
    if document["import_errors"]:
        suite = ET.SubElement(
            root,
            "testsuite",
            name="import errors",
            tests=str(len(document["import_errors"])),
            failures="0",
            errors="0",
            skipped=str(len(document["import_errors"])),
        )
        totals.update(tests=len(document["import_errors"]))
        for entry in document["import_errors"]:
            case = ET.SubElement(suite, "testcase", name=_x(entry["file"]), classname="import errors")
            ET.SubElement(case, "skipped", message="the DAG file failed to import: not scanned").text = _x(
                entry["error"]
            )
    for what in ("tests", "failures", "errors"):
        root.set(what, str(totals[what]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------------------------------- SARIF

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def _artifact(path: str | None) -> dict[str, Any] | None:
    """The DAG file as SARIF names it: relative to the working directory when under it (CI runs from the
    repository's root, and code-scanning pages resolve paths from there), else an absolute file URI."""
    if not path:
        return None
    file = Path(path).resolve()
    try:
        return {"uri": file.relative_to(Path.cwd().resolve()).as_posix(), "uriBaseId": "%SRCROOT%"}
    except ValueError:
        return {"uri": file.as_uri()}


def _task_line(path: str | None, task_id: str) -> int | None:
    """The first line of the DAG file that names the task id in quotes: where a CI page points."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for number, line in enumerate(text.splitlines(), 1):
        if f'"{task_id}"' in line or f"'{task_id}'" in line:
            return number
    return None


def sarif_report(document: Mapping[str, Any], dag_files: Mapping[str, str] | None = None) -> str:
    """SARIF 2.1.0: one rule per policy; per task pod one result per deny (error) and warn (warning)
    message, located in the DAG file; pods not built or evaluated and DAG files that failed to import are
    results of their own rules."""
    dag_files = dag_files or {}
    rule_ids: list[str] = []
    results: list[dict[str, Any]] = []
    lines: dict[tuple[str, str], int | None] = {}

    def rule(rule_id: str) -> int:
        if rule_id not in rule_ids:
            rule_ids.append(rule_id)
        return rule_ids.index(rule_id)

    def result(rule_id: str, level: str, text: str, path: str | None, line: int | None, *, key: str) -> None:
        entry: dict[str, Any] = {
            "ruleId": rule_id,
            "ruleIndex": rule(rule_id),
            "level": level,
            "message": {"text": text},
            "partialFingerprints": {"airflowOpaMutation/v1": hashlib.sha256(key.encode()).hexdigest()},
        }
        artifact = _artifact(path)
        if artifact is not None:
            physical: dict[str, Any] = {"artifactLocation": artifact}
            if line is not None:
                physical["region"] = {"startLine": line}
            entry["locations"] = [{"physicalLocation": physical}]
        results.append(entry)

    for task in document["tasks"]:
        path = dag_files.get(task["dag_id"])
        key = (task["dag_id"], task["task_id"])
        if key not in lines:
            lines[key] = _task_line(path, task["task_id"])
        where = f"{task['dag_id']}.{pod_name(task)}"
        for kind, level in (("deny", "error"), ("warn", "warning")):
            for m in task.get(kind, []):
                rule_id = m["policy"] or RULE_UNATTRIBUTED
                verb = "would be denied" if kind == "deny" else "warning"
                fingerprint = f"{where}\0{kind}\0{rule_id}\0{m['msg']}"
                result(rule_id, level, f"{where} {verb}: {m['msg']}", path, lines[key], key=fingerprint)
        if task["status"] in ("failed", "error"):
            text = f"{where}: the pod could not be {'evaluated' if task['status'] == 'failed' else 'built'}: "
            reason = str(task.get("error") or task["status"])
            result(RULE_SCAN_ERROR, "error", text + reason, path, lines[key], key=f"{where}\0{task['status']}")
    for entry in document["import_errors"]:
        last = [line for line in entry["error"].strip().splitlines() if line.strip()][-1:]
        text = f"the DAG file failed to import (not scanned): {last[0].strip() if last else ''}"
        result(RULE_IMPORT_ERROR, "warning", text, entry["file"], None, key=f"{entry['file']}\0import")
    descriptions = {
        RULE_UNATTRIBUTED: "A deny or warn message that names no policy.",
        RULE_SCAN_ERROR: "A task's pod that could not be built or evaluated.",
        RULE_IMPORT_ERROR: "A DAG file that failed to import: its tasks were not scanned.",
    }
    rules = [
        {
            "id": rule_id,
            "name": rule_id,
            "shortDescription": {"text": descriptions.get(rule_id, f"Policy {rule_id} of the pod-mutation library.")},
        }
        for rule_id in rule_ids
    ]
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "airflow-opa-mutation",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {"executionSuccessful": document["exit_code"] in (0, 1), "exitCode": document["exit_code"]}
                ],
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().resolve().as_uri() + "/"}},
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2, ensure_ascii=False) + "\n"


def render(fmt: str, document: Mapping[str, Any], dag_files: Mapping[str, str]) -> str:
    if fmt == "html":
        return html_report(document, dag_files)
    if fmt == "junit":
        return junit_report(document)
    if fmt == "sarif":
        return sarif_report(document, dag_files)
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"


__all__ = ["STATUSES", "html_report", "junit_report", "policy_counts", "render", "sarif_report"]
