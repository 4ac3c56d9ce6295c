"""``verify``: samples against their expected outcome, convergence, ``--update`` (golden files), exit codes."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..conftest import POLICIES
from .conftest import LIBRARY, parse

LATEST = Path("tag_warn") / "samples" / "01-latest.yaml.sample"
PRIVILEGED = Path("no_privileged") / "samples" / "01-privileged.yaml.sample"


def test_the_test_library_passes(run, schema_validator):
    result = run("verify", str(LIBRARY), "-o", "json")
    assert result.exit_code == 0, result.output
    document = parse(result)
    schema_validator(document)
    assert document["summary"] == {"pass": 4, "fail": 0, "updated": 0}
    by_name = {(s["policy"], s["name"]): s for s in document["samples"]}
    assert by_name[("team_label", "01-adds-team.yaml.sample")]["converged"] is True
    assert by_name[("no_privileged", "01-privileged.yaml.sample")]["converged"] is None  # denied: nothing applied


def test_text_output_is_a_table_and_a_summary(run):
    result = run("verify", str(LIBRARY), "--color", "never")
    assert result.exit_code == 0
    assert "02-configured-default.yaml.sample" in result.stdout
    assert result.stdout.rstrip().endswith("4 sample(s): 4 passed, 0 failed")


def test_only_some_policies(run):
    document = parse(run("verify", str(LIBRARY), "--policy", "team_label", "-o", "json"))
    assert {s["policy"] for s in document["samples"]} == {"team_label"}


def _edit(path: Path, change) -> None:
    text = path.read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    document = yaml.safe_load(text)
    change(document)
    path.write_text(header + yaml.safe_dump(document, sort_keys=False))


def test_a_wrong_expectation_fails_with_a_diff_and_update_fixes_it(run, library_copy):
    sample = library_copy / LATEST
    original = sample.read_text()

    def wrong(document):
        document["expect"]["warn"] = []
        document["expect"]["pod"]["metadata"]["labels"]["team"] = "someone"

    _edit(sample, wrong)
    result = run("verify", str(library_copy), "--color", "never")
    assert result.exit_code == 1
    assert f"FAIL {sample}" in result.stdout
    assert "warn: expected none, got [('tag_warn'" in result.stdout
    assert "-    team: someone" in result.stdout and "+    team: unowned" in result.stdout

    result = run("verify", str(library_copy), "--update", "-o", "json")
    assert result.exit_code == 0, result.output
    assert parse(result)["summary"] == {"pass": 3, "fail": 0, "updated": 1}
    assert sample.read_text() == original  # same content, same layout, header comment kept
    assert run("verify", str(library_copy)).exit_code == 0


def test_a_denied_sample_checks_the_pod_its_patch_would_make(run, library_copy):
    def wrong(document):
        document["expect"]["pod"]["spec"]["automountServiceAccountToken"] = True

    _edit(library_copy / PRIVILEGED, wrong)
    document = parse(run("verify", str(library_copy), "-o", "json"))
    failed = [s for s in document["samples"] if s["status"] == "fail"]
    assert [s["name"] for s in failed] == ["01-privileged.yaml.sample"]
    assert "the patch is not applied: denied" in failed[0]["problems"][0]


def test_a_missing_deny_fails(run, library_copy):
    _edit(library_copy / PRIVILEGED, lambda d: d["expect"].update(deny=[]))
    result = run("verify", str(library_copy), "-o", "json")
    assert result.exit_code == 1
    [failed] = [s for s in parse(result)["samples"] if s["status"] == "fail"]
    assert failed["problems"] == ["deny: expected none, got [('no_privileged', 'container \"base\" is privileged')]"]


def test_a_policy_that_does_not_converge_fails_even_with_update(run, library_copy):
    """A policy that patches its own output again (a counter) would flap: --update cannot bless it."""
    (library_copy / "counter").mkdir()
    (library_copy / "counter" / "policy.rego").write_text(
        "package airflow.pod.team_label\n\nimport rego.v1\n\n"
        'ops contains {"op": "add", "path": "/metadata/labels/generation", "value": sprintf("%d", [n + 1]),'
        ' "policy": "counter"} if {\n'
        '\tn := to_number(object.get(input.pod.metadata.labels, "generation", "0"))\n}\n'
    )
    result = run("verify", str(library_copy), "--update", "-o", "json")
    assert result.exit_code == 1
    samples = {s["name"]: s for s in parse(result)["samples"]}
    flapping = samples["01-adds-team.yaml.sample"]
    assert flapping["status"] == "fail" and flapping["converged"] is False
    assert any("convergence: the mutated pod still gets 1 op(s): add /metadata/labels/generation [counter]" in p
               for p in flapping["problems"])


def test_no_samples_is_a_usage_error(run, tmp_path):
    result = run("verify", str(tmp_path))
    assert result.exit_code == 2
    assert "no samples under" in result.stderr


def test_missing_folder_is_a_usage_error(run, tmp_path):
    assert run("verify", str(tmp_path / "nope")).exit_code == 2


def test_the_shipped_library(run):
    """The same samples tests/test_policy_samples.py runs, through the CLI."""
    result = run("verify", str(POLICIES), "-o", "json")
    document = parse(result)
    every_policy = {path.parent.name for path in POLICIES.glob("*/policy.rego")}
    assert {sample["policy"] for sample in document["samples"]} == every_policy  # each policy ships samples
    assert result.exit_code == 0, [(s["path"], s["problems"]) for s in document["samples"] if s["status"] == "fail"]


def test_a_progress_bar_only_for_a_terminal(run):
    assert "verifying samples" in run("verify", str(LIBRARY), "--color", "always").stderr  # a forced terminal
    assert run("verify", str(LIBRARY)).stderr == ""
    assert run("verify", str(LIBRARY), "--color", "always", "-o", "json").stderr == ""
