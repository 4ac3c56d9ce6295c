"""``preview``: golden text, JSON schema, exit codes, inputs, and the hook's own code path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from airflow_opa_mutation import AUDIT_ANNOTATION, MutationHook, PodDenied, Settings, pod_from_json, pod_to_json

from ..conftest import POLICIES
from . import golden
from .conftest import LIBRARY, parse
from .golden import PODS

PREVIEW = PODS / "preview.yaml"
WARN_SAMPLE = LIBRARY / "tag_warn" / "samples" / "01-latest.yaml.sample"
CONFIG_SAMPLE = LIBRARY / "team_label" / "samples" / "02-configured-default.yaml.sample"


def test_golden_text():
    """People's output, colour off: the decision, deny/warn with their policy, each op and its policy, the diff."""
    code, text = golden.preview_text()
    assert code == 1  # one pod is denied
    assert text == golden.PREVIEW_GOLDEN.read_text(), "if the change is intended: scripts/update-golden"


def test_colour_when_asked(run):
    result = run("preview", "--policies", str(LIBRARY), "--color", "always", str(PREVIEW))
    assert "\x1b[" in result.stdout
    assert "\x1b[" not in run("preview", "--policies", str(LIBRARY), str(PREVIEW)).stdout  # not a terminal


def test_json_matches_the_schema_and_says_everything(run, schema_validator):
    result = run("preview", "--policies", str(LIBRARY), "-o", "json", str(PREVIEW), str(WARN_SAMPLE))
    assert result.exit_code == 1
    document = parse(result)
    schema_validator(document)
    assert document["exit_code"] == 1
    mutated, denied, unchanged, warned = document["pods"]
    assert [p["verdict"] for p in document["pods"]] == ["mutated", "denied", "unchanged", "mutated"]
    assert mutated["source"].endswith("preview.yaml#1")
    assert [(op["op"], op["path"], op["policy"]) for op in mutated["ops"]] == [
        ("add", "/metadata/labels/team", "team_label"),
        ("add", "/spec/automountServiceAccountToken", "token_off"),
    ]
    assert mutated["after"]["metadata"]["labels"]["team"] == "unowned"
    assert mutated["airflow"] == {"dag_id": "etl", "task_id": "load", "run_id": "scheduled__2026-11-25T00:00:00+00:00",
                                  "try_number": 1, "launcher": "kubernetes_executor"}
    assert any(line == "+  automountServiceAccountToken: false" for line in mutated["diff"])
    assert denied["deny"] == [{"policy": "no_privileged", "msg": 'container "base" is privileged'}]
    assert denied["error"]["type"] == "PodDenied" and denied["after"] is None and denied["diff"] == []
    assert unchanged["ops"] == [] and unchanged["diff"] == [] and unchanged["changed"] is False
    assert warned["warn"] == [{"policy": "tag_warn", "msg": 'container "base" uses the mutable tag latest'}]


def test_exactly_what_the_hook_does(run, library_server):
    """The previewed pod is the pod the hook itself produces (request uid aside)."""
    result = run("preview", "--url", library_server.url, "-o", "json", str(PREVIEW))
    previewed = parse(result)["pods"]
    hook = MutationHook(Settings(url=library_server.url), trust_pod_ids=True)
    try:
        for document, shown in zip(yaml.safe_load_all(PREVIEW.read_text()), previewed, strict=True):
            pod = pod_from_json(document)
            if shown["verdict"] == "denied":
                with pytest.raises(PodDenied) as denied:
                    hook(pod)
                assert [{"policy": m.policy, "msg": m.msg} for m in denied.value.messages] == shown["deny"]
                assert pod_to_json(pod) == shown["before"]
                continue
            hook(pod)
            got = pod_to_json(pod)
            for doc in (got, shown["after"]):
                doc.get("metadata", {}).get("annotations", {}).pop(AUDIT_ANNOTATION, None)
            assert got == shown["after"]
    finally:
        hook.close()


def test_allowed_pods_exit_0(run):
    """Only the compliant third document, through stdin."""
    third = list(yaml.safe_load_all(PREVIEW.read_text()))[2]
    result = run("preview", "--policies", str(LIBRARY), "-", input=yaml.safe_dump(third))
    assert result.exit_code == 0, result.output
    assert "UNCHANGED" in result.stdout and "1 pod(s): 1 unchanged" in result.stdout


def test_stdin_multi_document_json_and_kind_list(run):
    documents = list(yaml.safe_load_all(PREVIEW.read_text()))
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": documents[:1]})
    text = "---\n".join([yaml.safe_dump(documents[0]), listed])
    result = run("preview", "--policies", str(LIBRARY), "-o", "json", "-", input=text)
    assert result.exit_code == 0, result.output
    assert [p["source"] for p in parse(result)["pods"]] == ["<stdin>#1", "<stdin>#2[0]"]


def test_a_sample_brings_its_config_with_policies_and_config_file_wins(run):
    result = run("preview", "--policies", str(LIBRARY), "-o", "json", str(CONFIG_SAMPLE))
    assert parse(result)["pods"][0]["after"]["metadata"]["labels"]["team"] == "data-eng"
    delta = PODS / "config-delta.yaml"
    result = run("preview", "--policies", str(LIBRARY), "--config", str(delta), "-o", "json", str(CONFIG_SAMPLE))
    assert parse(result)["pods"][0]["after"]["metadata"]["labels"]["team"] == "platform"


def test_with_url_a_sample_config_is_noted_not_applied(run, library_server):
    result = run("preview", "--url", library_server.url, str(CONFIG_SAMPLE))
    assert result.exit_code == 0
    assert "config: is not applied" in result.stderr
    assert "team: unowned" in result.stdout


def test_url_defaults_to_the_configuration(run, library_server):
    result = run("preview", "-o", "json", str(PREVIEW), env={"AIRFLOW__OPA_MUTATION__URL": library_server.url})
    assert [p["verdict"] for p in parse(result)["pods"]] == ["mutated", "denied", "unchanged"]


def test_unreachable_opa_is_a_failing_pod_exit_1(run):
    from airflow_opa_mutation.cli._local_opa import free_port

    result = run("preview", "--url", f"http://127.0.0.1:{free_port()}", "-o", "json", str(PREVIEW))
    assert result.exit_code == 1
    pods = parse(result)["pods"]
    assert {p["verdict"] for p in pods} == {"failed"}
    assert {p["error"]["type"] for p in pods} == {"OpaUnavailable"}


def test_the_shipped_library_denies_a_privileged_sample(run):
    sample = POLICIES / "deny_privileged" / "samples" / "01-privileged.yaml.sample"
    result = run("preview", "--policies", str(POLICIES), "-o", "json", str(sample))
    assert result.exit_code == 1
    assert {m["policy"] for m in parse(result)["pods"][0]["deny"]} == {"deny_privileged", "pod_security"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["no-such-file.yaml"], "cannot read no-such-file.yaml"),
        (["--url", "http://127.0.0.1:1", "--policies", str(LIBRARY), str(PREVIEW)], "not both"),
        (["--config", str(PODS / "config-delta.yaml"), str(PREVIEW)], "--config needs --policies"),
        (["--url", "ftp://opa", str(PREVIEW)], "[opa_mutation] url"),
        ([str(PODS / "config-delta.yaml")], "neither a pod"),
    ],
    ids=["missing-file", "url-and-policies", "config-without-policies", "bad-url", "not-a-pod"],
)
def test_usage_and_runtime_errors_exit_2(run, args, needle):
    result = run("preview", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert result.stdout == ""


def test_usage_error_in_json_mode_is_a_json_document(run, schema_validator):
    result = run("preview", "-o", "json", "no-such-file.yaml")
    assert result.exit_code == 2
    document = parse(result)
    schema_validator(document)
    assert document["exit_code"] == 2 and "no-such-file.yaml" in document["error"]["message"]


def test_click_usage_error_exits_2(run):
    assert run("preview").exit_code == 2  # no POD_FILE
    assert run("preview", "--output", "xml", str(PREVIEW)).exit_code == 2


def test_policies_that_do_not_compile_exit_2(run, tmp_path: Path):
    (tmp_path / "broken.rego").write_text("package airflow.pod\n\ndecision := {\n")
    result = run("preview", "--policies", str(tmp_path), str(PREVIEW))
    assert result.exit_code == 2
    assert "OPA could not start" in result.stderr and "fix:" in result.stderr


def test_invalid_pod_exits_2(run, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: base, ports: [{containerPort: eighty}]}]\n")
    result = run("preview", "--policies", str(LIBRARY), str(bad))
    assert result.exit_code == 2
    assert "not a pod the kubernetes client can represent" in result.stderr


def test_a_runtime_error_in_json_mode_names_the_fix(run, tmp_path: Path, schema_validator):
    (tmp_path / "broken.rego").write_text("package airflow.pod\n\ndecision := {\n")
    result = run("preview", "--policies", str(tmp_path), "-o", "json", str(PREVIEW))
    assert result.exit_code == 2
    document = parse(result)
    schema_validator(document)
    assert document["error"]["message"].startswith("OPA could not start")
    assert "opa check" in document["error"]["fix"]


def test_the_console_script(tmp_path: Path):
    """The [project.scripts] entry point, as installed: a real process with real exit statuses."""
    import subprocess
    import sys

    script = Path(sys.executable).parent / "airflow-opa-mutation"
    assert script.exists(), "scripts/setup-python installs the package with its console script"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0 and "airflow-opa-mutation, version" in done.stdout
    done = subprocess.run([str(script), "preview", "--policies", str(LIBRARY), str(PREVIEW)],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1 and "DENIED" in done.stdout and "\x1b[" not in done.stdout
    done = subprocess.run([str(script), "preview", str(tmp_path / "missing.yaml")], capture_output=True, text=True,
                          env=env, check=False)
    assert done.returncode == 2 and "cannot read" in done.stderr
