"""`airflow-opa-mutation bundle`: the signed-bundle builder behind the CLI."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from click.testing import CliRunner

from airflow_opa_mutation.cli import cli

REPO = Path(__file__).resolve().parents[2]


def test_bundle_keygen_and_signed_build(tmp_path):
    runner = CliRunner()
    keys = tmp_path / "keys"
    result = runner.invoke(cli, ["bundle", "keygen", "--out", str(keys)])
    assert result.exit_code == 0, result.output
    private = next(p for p in keys.glob("*.pem") if not p.name.endswith(".pub.pem"))
    out = tmp_path / "bundle.tar.gz"
    result = runner.invoke(cli, ["bundle", "build", "--policies", str(REPO / "policies"), "--output", str(out),
                                 "--revision", "cli-test", "--signing-key", str(private), "--scope", "cli"])
    assert result.exit_code == 0, result.output
    with tarfile.open(out) as bundle:
        names = bundle.getnames()
        manifest = json.load(bundle.extractfile(next(n for n in names if n.endswith(".manifest"))))
    assert manifest["revision"] == "cli-test"
    assert any(n.endswith(".signatures.json") for n in names)
    assert not any(n.endswith((".sample", "_test.rego", "README.md")) for n in names)


def test_bundle_build_failure_is_exit_1(tmp_path):
    result = CliRunner().invoke(cli, ["bundle", "build", "--policies", str(tmp_path / "missing"),
                                      "--output", str(tmp_path / "b.tar.gz"), "--unsigned"])
    assert result.exit_code == 1
