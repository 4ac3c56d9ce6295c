"""Credentials a pod carries outside its env: in arguments after secret flags, in probe and hook headers, in
annotations. The decision-log mask (deploy/opa/mask.rego, on a real OPA) and the hook's dry-run redaction
(``_redact``) are run on one table of cases and must give the same document; their lists of secret words
must be the same list."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
import urllib.request
from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import _redact

from .conftest import REPO, decision_policy

MASK = REPO / "deploy" / "opa" / "mask.rego"
R = "<redacted>"
WORKLOAD = json.dumps({"token": "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ0aSJ9.table-workload-signature", "ti": {"dag_id": "etl"}})

#: (command, args) -> (masked command, masked args). Flags are matched by the words in their names, in any
#: case, "_" read as "-"; the value is the next argument, or what follows "=" or a space in the same one.
ARGV_CASES: list[tuple[tuple[list[Any], list[Any]], tuple[list[Any], list[Any]]]] = [
    (([], ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", WORKLOAD]),
     ([], ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", R])),
    ((["app", f"--JSON-String={WORKLOAD}"], []), (["app", f"--JSON-String={R}"], [])),
    ((["app", "--client-secret"], ["s3cret", "--verbose"]), (["app", "--client-secret"], [R, "--verbose"])),
    (([], ["--Password", "hunter2", "--db_password=hunter3", "--log-level", "debug"]),
     ([], ["--Password", R, f"--db_password={R}", "--log-level", "debug"])),
    ((["sh", "-c"], ["dbt run --target prod --Token abc123 --full-refresh"]),
     (["sh", "-c"], [f"dbt run --target prod --Token {R} --full-refresh"])),
    (([], ["x --api-key 'a b' --secret=\"c d\" --AUTH y"]), ([], [f"x --api-key {R} --secret={R} --AUTH {R}"])),
    (([], ["--API_KEY\tvalue", "--token", ""]), ([], [f"--API_KEY\t{R}", "--token", R])),
    ((["airflow", "connections", "add", "db", "--conn-uri", "postgres://u:p@h/db"], []),
     (["airflow", "connections", "add", "db", "--conn-uri", R], [])),
    (([], ["--tokenizer", "bert"]), ([], ["--tokenizer", R])),  # words, not whole names: over-masking is safe
    (([], ["--pa\u017fsword", "x", "--API_\u212aEY=y"]), ([], ["--pa\u017fsword", R, f"--API_\u212aEY={R}"])),  # Unicode case folding, alike in RE2 and re
    (([], ["--token"]), ([], ["--token"])),  # nothing follows
    (([], ["--verbose", "-p", "x", "password", "y"]), ([], ["--verbose", "-p", "x", "password", "y"])),
]

#: annotations -> masked annotations: keys compared in lower case; bearer/basic values whatever the key.
ANNOTATION_CASES: list[tuple[dict[str, str], dict[str, str]]] = [
    ({"Example.com/DB-Password": "hunter2", "vault.example.com/TOKEN": "s.abc", "api_KEY": "k", "team": "data"},
     {"Example.com/DB-Password": R, "vault.example.com/TOKEN": R, "api_KEY": R, "team": "data"}),
    ({"example.com/Authorization": "x", "a~b": "Bearer xyz", "c": "basic dXNlcjpw", "d": "bearer"},
     {"example.com/Authorization": R, "a~b": R, "c": R, "d": "bearer"}),
    ({"kubectl.kubernetes.io/last-applied-configuration": '{"spec":{}}', "dag_id": "etl"},
     {"kubectl.kubernetes.io/last-applied-configuration": R, "dag_id": "etl"}),
    ({"team": "data"}, {"team": "data"}),
]


def _argv_pod(command: list[Any], args: list[Any]) -> dict[str, Any]:
    """One argument vector in every place a pod runs a program: each container kind, exec probes and hooks."""
    def program(**extra: Any) -> dict[str, Any]:
        return {**({"command": command} if command else {}), **({"args": args} if args else {}), **extra}

    exec_ = {"exec": {"command": command + args}}
    return {"metadata": {"name": "argv"}, "spec": {
        "containers": [program(name="base", livenessProbe=copy.deepcopy(exec_),
                               lifecycle={"preStop": copy.deepcopy(exec_)})],
        "initContainers": [program(name="init", startupProbe=copy.deepcopy(exec_))],
        "ephemeralContainers": [program(name="debug", lifecycle={"postStart": copy.deepcopy(exec_)})],
    }}


def _cases() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = [(f"argv-{i}", _argv_pod(*given), _argv_pod(*want)) for i, (given, want) in enumerate(ARGV_CASES)]
    for i, (given, want) in enumerate(ANNOTATION_CASES):
        pod = {"metadata": {"name": "annotated", "annotations": given}, "spec": {"containers": [{"name": "base"}]}}
        cases.append((f"annotations-{i}", pod, {**pod, "metadata": {**pod["metadata"], "annotations": want}}))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def masked_by_opa(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each case's pod as OPA's console decision log shows it, masked by the shipped mask."""
    from airflow_opa_mutation.cli._local_opa import LocalOpa

    folder = tmp_path_factory.mktemp("mask-table")
    (folder / "policy.rego").write_text(decision_policy('decision := {"patch": []}')["policy.rego"])
    opa = LocalOpa([folder, MASK], args=["--set", "decision_logs.console=true"]).start()
    try:
        ids = {}
        for name, pod, _ in CASES:
            request = urllib.request.Request(f"{opa.url}/v1/data/airflow/pod/decision",
                                             data=json.dumps({"input": {"pod": pod}}).encode(), method="POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                ids[json.load(response)["decision_id"]] = name
        deadline = time.monotonic() + 10
        while True:
            events = {}
            for line in opa.logs().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("msg") == "Decision Log" and event.get("decision_id") in ids:
                    events[ids[event["decision_id"]]] = event["input"]["pod"]
            if len(events) == len(ids) or time.monotonic() > deadline:
                return events
            time.sleep(0.05)
    finally:
        opa.stop()


@pytest.mark.parametrize(("name", "pod", "want"), CASES, ids=[c[0] for c in CASES])
def test_the_mask_and_the_dry_run_redaction_agree_on_every_case(masked_by_opa, name, pod, want):
    assert masked_by_opa[name] == want
    assert _redact.redact(pod, pod) == want


def test_the_mask_and_the_hook_use_the_same_secret_words():
    opa = os.environ.get("AOM_OPA_BIN", "opa")
    done = subprocess.run([opa, "eval", "--format", "json", "-d", str(MASK), "data.system.log.secret_words"],
                          capture_output=True, text=True, check=True)
    words = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    assert tuple(words) == _redact.SECRET_WORDS
    assert "json-string" in words


def test_dry_run_diff_shows_no_argument_header_or_annotation_secret(start_opa, make_hook, hook_log):
    """Every container kind, probes and hooks, before and after: the policy replaces the whole spec and the
    annotations, so that every line of both is in the diff."""
    secrets = [f"dry-run-secret-{i}" for i in range(12)]
    pod = k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name="p", namespace="airflow", annotations={
            "Vault.example.com/Token": secrets[0], "creds": f"Bearer {secrets[1]}", "team": "data"}),
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(
                name="base", image="apache/airflow:3.3.2",
                args=["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string",
                      json.dumps({"token": secrets[2]})],
                readiness_probe=k8s.V1Probe(http_get=k8s.V1HTTPGetAction(port=8080, http_headers=[
                    k8s.V1HTTPHeader(name="X-Api-Key", value=secrets[3])])),
                liveness_probe=k8s.V1Probe(_exec=k8s.V1ExecAction(command=["check", "--secret", secrets[4]])),
                lifecycle=k8s.V1Lifecycle(pre_stop=k8s.V1LifecycleHandler(http_get=k8s.V1HTTPGetAction(
                    port=8080, http_headers=[k8s.V1HTTPHeader(name="Authorization", value=secrets[5])]))),
            )],
            init_containers=[k8s.V1Container(name="init", image="busybox", command=["app", f"--PASSWORD={secrets[6]}"])],
            ephemeral_containers=[k8s.V1EphemeralContainer(name="debug", image="busybox",
                                                           args=["sh", "-c", f"curl --token {secrets[7]} x"])],
        ),
    )
    hook = make_hook(start_opa(decision_policy(f"""
        decision := {{"patch": [
            {{"op": "replace", "path": "/spec", "value": {{"containers": [{{
                "name": "base", "image": "envoy:1.30", "args": ["--Api_Key", "{secrets[8]}"],
                "startupProbe": {{"httpGet": {{"port": 1, "httpHeaders": [{{"name": "Cookie", "value": "{secrets[9]}"}}]}}}},
                "lifecycle": {{"postStart": {{"exec": {{"command": ["register", "--auth-token={secrets[10]}"]}}}}}},
            }}]}}}},
            {{"op": "replace", "path": "/metadata/annotations", "value": {{"example.com/db-password": "{secrets[11]}"}}}},
        ]}}
    """)), mode="dry-run")
    hook(pod)
    text = hook_log.text
    assert "would change" in text
    for secret in secrets:
        assert secret not in text
    # the places are still shown, with placeholders
    for shown in ('"--json-string",', f'"--PASSWORD={R}"', f'"curl --token {R} x"', '"--Api_Key",',
                  f'"--auth-token={R}"', f'"Vault.example.com/Token": "{R}"', f'"example.com/db-password": "{R}"',
                  '"name": "X-Api-Key"', '"name": "Cookie"', f'"value": "{R}"', '"team": "data"'):
        assert shown in text
