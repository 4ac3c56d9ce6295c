"""The policy configuration's own mistakes and risky exemptions, as ``verify`` and ``doctor`` report them.

A configuration error (an unknown key, a value of the wrong type: ``policies/lib/config.rego``, ``errors``)
fails ``verify`` and ``doctor`` naming the key; an exemption that grants more than it seems to
(``advisories``: an ``exempt_images`` entry not pinned by digest, a namespace glob in a global exemption) is
a warning. All against a real OPA serving the shipped library.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import POLICIES
from .conftest import parse

PINNED = "registry.example.com/debug/tool@sha256:" + "0123456789abcdef" * 4

#: A KubernetesExecutor worker pod the shipped defaults leave alone (what lib/fixtures_test.rego's
#: hardened_pod is): a sample about the configuration alone.
HARDENED_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "etl-daily-load-warehouse-5k2x9qzt",
        "namespace": "airflow",
        "labels": {"dag_id": "etl_daily", "task_id": "load_warehouse", "kubernetes_executor": "True",
                   "try_number": "1", "airflow-worker": "17"},
    },
    "spec": {
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "base",
            "image": "apache/airflow:3.3.2",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        }],
    },
}

AIRFLOW = {"dag_id": "etl_daily", "task_id": "load_warehouse", "run_id": "scheduled__2026-11-24T00:00:00+00:00",
           "try_number": 1, "map_index": -1, "launcher": "kubernetes_executor"}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """The shipped library without its samples: each test adds the one sample it is about."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("samples"))
    return target


def add_sample(library: Path, config: dict[str, Any], name: str = "01-config.yaml.sample") -> Path:
    """A sample whose expectation is the hardened pod left alone, with no deny and no warn."""
    folder = library / "image_tag" / "samples"
    folder.mkdir(exist_ok=True)
    path = folder / name
    document = {"description": "a configuration delta and nothing else", "config": config, "airflow": AIRFLOW,
                "pod": HARDENED_POD, "expect": {"pod": HARDENED_POD, "deny": [], "warn": []}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def config_file(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# -- verify ------------------------------------------------------------------------------------------------


def test_verify_fails_a_sample_whose_configuration_has_an_error_naming_the_key(run, library, schema_validator):
    sample = add_sample(library, {"policies": {"image_tag": {"params": {"actoin": "deny"}}}})
    original = sample.read_text()
    result = run("verify", str(library), "-o", "json")
    document = parse(result)
    schema_validator(document)
    assert result.exit_code == 1, document
    [checked] = document["samples"]
    assert checked["status"] == "fail"
    assert any(p.startswith("configuration error: policies.image_tag.params.actoin: unknown parameter")
               for p in checked["problems"]), checked["problems"]

    text = run("verify", str(library), "--color", "never")
    assert text.exit_code == 1
    assert "policies.image_tag.params.actoin" in text.stdout

    # --update cannot bless a configuration error into the golden file
    updated = run("verify", str(library), "--update", "-o", "json")
    assert updated.exit_code == 1
    assert sample.read_text() == original


def test_verify_fails_on_a_string_enabled(run, library):
    add_sample(library, {"policies": {"image_tag": {"enabled": "false"}}})
    result = run("verify", str(library), "-o", "json")
    assert result.exit_code == 1
    [checked] = parse(result)["samples"]
    assert any("policies.image_tag.enabled" in p for p in checked["problems"]), checked["problems"]


def test_verify_warns_on_an_image_exemption_not_pinned_by_digest(run, library, schema_validator):
    add_sample(library, {"policies": {"deny_privileged": {"params": {"exempt_images": ["registry.example.com/debug/*"]}}}})
    add_sample(library, {"policies": {"deny_privileged": {"params": {"exempt_images": [PINNED]}}}}, "02-pinned.yaml.sample")
    result = run("verify", str(library), "-o", "json")
    document = parse(result)
    schema_validator(document)
    assert result.exit_code == 0, document  # a warning, not a failure
    samples = {s["name"]: s for s in document["samples"]}
    [warning] = samples["01-config.yaml.sample"]["warnings"]
    assert warning.startswith('policies.deny_privileged.params.exempt_images[0]: "registry.example.com/debug/*" '
                              "is not one image pinned by digest")
    assert samples["02-pinned.yaml.sample"]["warnings"] == []

    text = run("verify", str(library), "--color", "never")
    assert text.exit_code == 0
    assert "warning: policies.deny_privileged.params.exempt_images[0]" in text.stdout


def test_verify_warns_on_a_namespace_glob_in_a_global_exemption(run, library):
    add_sample(library, {"exempt": {"platform": {"namespace": "kube-*"}}})
    result = run("verify", str(library), "-o", "json")
    assert result.exit_code == 0
    [checked] = parse(result)["samples"]
    assert [w.split(":")[0] for w in checked["warnings"]] == ["exempt.platform.namespace"]


# -- doctor ------------------------------------------------------------------------------------------------


def doctor(run, tmp_path: Path, config: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    result = run("doctor", "--policies", str(POLICIES), "--config", str(config_file(tmp_path, config)), "-o", "json")
    document = parse(result)
    return result.exit_code, document["checks"]


def named(checks: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [c for c in checks if c["name"] == name]


def test_doctor_fails_on_an_unknown_parameter_naming_the_key(run, tmp_path, schema_validator):
    config = {"policies": {"require_resource_limits": {"enabled": True, "params": {"maximum": {"memory": "1Gi"}}}}}
    result = run("doctor", "--policies", str(POLICIES), "--config", str(config_file(tmp_path, config)), "-o", "json")
    document = parse(result)
    schema_validator(document)
    assert result.exit_code == 1
    [error] = named(document["checks"], "policy configuration")
    assert error["status"] == "fail"
    assert "policies.require_resource_limits.params.maximum" in error["detail"]
    assert error["fix"]


def test_doctor_fails_on_a_string_enabled(run, tmp_path):
    code, checks = doctor(run, tmp_path, {"policies": {"deny_privileged": {"enabled": "false"}}})
    assert code == 1
    [error] = named(checks, "policy configuration")
    assert error["status"] == "fail" and "policies.deny_privileged.enabled" in error["detail"]


def test_doctor_passes_a_valid_configuration(run, tmp_path):
    code, checks = doctor(run, tmp_path, {"policies": {"image_tag": {"params": {"action": "deny"}}}})
    assert code == 0, checks
    assert [c["status"] for c in named(checks, "policy configuration")] == ["ok"]
    assert named(checks, "exemptions") == []


def test_doctor_warns_on_an_image_exemption_not_pinned_by_digest(run, tmp_path):
    config = {"policies": {"pod_security": {"params": {"exempt_images": [PINNED, "registry.example.com/debug/*"]}}}}
    code, checks = doctor(run, tmp_path, config)
    assert code == 0, checks
    [warning] = named(checks, "exemptions")
    assert warning["status"] == "warn"
    assert warning["detail"].startswith("policies.pod_security.params.exempt_images[1]:")
    assert "@sha256:" in warning["fix"]


def test_doctor_warns_on_a_namespace_glob_in_a_global_exemption(run, tmp_path):
    code, checks = doctor(run, tmp_path, {"exempt": {"platform": {"namespace": "kube-*"},
                                                     "system": {"namespace": "kube-system"}}})
    assert code == 0, checks
    [warning] = named(checks, "exemptions")
    assert warning["status"] == "warn" and warning["detail"].startswith("exempt.platform.namespace:")
    assert "RBAC" in warning["detail"]


def test_doctor_reads_the_errors_from_a_running_opa_too(run, start_opa, tmp_path):
    data = tmp_path / "org"
    data.mkdir()
    (data / "config.json").write_text(json.dumps({"airflow": {"pod": {"config": {
        "policies": {"image_tag": {"params": {"forbidden_tags": "latest"}}}}}}}))
    opa = start_opa(paths=[POLICIES, data / "config.json"])
    result = run("doctor", "--url", opa.url, "-o", "json")
    assert result.exit_code == 1
    [error] = named(parse(result)["checks"], "policy configuration")
    assert "policies.image_tag.params.forbidden_tags" in error["detail"]


# -- the documentation ---------------------------------------------------------------------------------------

DOCUMENTS = [POLICIES / "README.md", *sorted(POLICIES.glob("*/README.md")),
             POLICIES.parent / "docs" / "threat-model.md", POLICIES.parent / "docs" / "helm.md"]


def documented_configurations() -> list[tuple[str, Any]]:
    """Every YAML example that configures the library (``airflow: pod: config:``), with where it is."""
    import re

    found = []
    for document in DOCUMENTS:
        for i, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", document.read_text(), re.DOTALL)):
            example = yaml.safe_load(block)
            if isinstance(example, dict) and isinstance(example.get("airflow"), dict):
                config = example["airflow"].get("pod", {}).get("config")
                if config is not None:
                    found.append((f"{document.relative_to(POLICIES.parent)} example {i}", config))
    return found


def test_every_documented_configuration_is_valid_and_grants_no_more_than_it_says():
    """The examples people copy: no configuration error, no advisory (all examples in one OPA evaluation)."""
    from airflow_opa_mutation.cli._local_opa import opa_binary

    examples = documented_configurations()
    assert len(examples) >= len(list(POLICIES.glob("*/README.md"))), "each policy README shows a configuration"
    query = ("x := [v | some c in input; v := [data.airflow.pod.lib.config.errors, "
             "data.airflow.pod.lib.config.advisories] with data.airflow.pod.config as c]")
    done = subprocess.run([opa_binary(None), "eval", "-d", str(POLICIES), "--stdin-input", "--format", "json", query],
                          input=json.dumps([config for _, config in examples]), capture_output=True, text=True,
                          check=True)
    verdicts = json.loads(done.stdout)["result"][0]["bindings"]["x"]
    assert {where: verdict for (where, _), verdict in zip(examples, verdicts, strict=True)
            if verdict != [[], []]} == {}
