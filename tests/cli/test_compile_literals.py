"""What `compile` writes down as literals must be the very values OPA computes: JSON has no sets and
rounds numbers through floats, and a policy's `patch`/`deny`/`warn` may be a rule that is undefined for a
pod. A library with a policy that has all three (tests/cli/library is not touched) shows each case."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from airflow_opa_mutation.cli._compiler import MARKER, CompileError, compile_library, is_generated
from airflow_opa_mutation.cli._local_opa import opa_binary

from ..conftest import POLICIES

ODD = """\
package airflow.pod.policies.odd

import data.airflow.pod.lib.config

defaults := {"enabled": true, "params": {"names": {"b", "a"}, "nested": [{"set": {3, 1}}], "big": 12345678901234567890,
    "ratio": 1.50, "tiny": 1e-7}}

params := config.params("odd")

# A complete rule, undefined unless the pod is named "odd-patched".
patch := [{"op": "add", "path": "/metadata/labels/odd", "value": "yes"}] if input.pod.metadata.name == "odd-patched"

deny contains sprintf("set param %v, nested %v", [params.names, params.nested[0].set]) if {
	input.pod.metadata.name == "odd-denied"
	is_set(params.names)
	is_set(params.nested[0].set)
}

warn := sprintf("%v %v %v", [params.big, params.ratio, params.tiny]) if input.pod.metadata.name == "odd-warned"
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("odd") / "policies"
    shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("*_test.rego", "samples", "*.md"))
    (root / "odd").mkdir()
    (root / "odd" / "policy.rego").write_text(ODD)
    return root


def _decide(paths: list[Path], name: str, query: str = "data.airflow.pod.decision") -> tuple[str, object]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "airflow"},
           "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]}}
    args = [opa_binary(None), "eval", "--format", "json", "--stdin-input", "--ignore", "*_test.rego"]
    for path in paths:
        args += ["--data", str(path)]
    done = subprocess.run([*args, query], input=json.dumps({"pod": pod}), capture_output=True, text=True,
                          check=True)
    value = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    return json.dumps(value, sort_keys=False), value


def test_sets_numbers_and_undefined_rules_compile_to_the_same_decisions(library: Path, tmp_path: Path) -> None:
    compiled = compile_library(library, None, opa=opa_binary(None))
    module = tmp_path / "compiled.generated.rego"
    module.write_text(compiled.text)
    assert compiled.text.startswith(MARKER + "\n") and is_generated(module)
    assert compiled.rules["odd"] == ("deny", "patch", "warn")
    settings_line = next(line for line in compiled.text.splitlines() if line.startswith("settings := "))
    assert '"names": {"a", "b"}' in settings_line, "a set written back as a set"
    assert '"set": {1, 3}' in settings_line, "a set inside an array too"
    assert "12345678901234567890" in settings_line and "1.50" in settings_line and "1e-7" in settings_line
    for name in ("odd-patched", "odd-denied", "odd-warned", "plain"):
        dynamic, _ = _decide([library], name)
        assert _decide([library, module], name)[0] == dynamic, name
        assert _decide([library, module], name, "data.airflow.pod.lib.compiled.holds")[1] is True
    assert any(entry["policy"] == "odd" for entry in _decide([library], "odd-denied")[1]["deny"])  # type: ignore[index]
    assert any(op["policy"] == "odd" for op in _decide([library], "odd-patched")[1]["patch"])  # type: ignore[index]


def test_a_library_without_the_framework_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package airflow.pod.policies.alone\n\ndefaults := {}\n")
    with pytest.raises(CompileError, match=r"no data\.airflow\.pod\.lib\.config"):
        compile_library(tmp_path, None, opa=opa_binary(None))
