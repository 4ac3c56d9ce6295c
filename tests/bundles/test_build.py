"""The bundle builder: what goes into the bundle, the manifest, the signature, and what it refuses.

Every bundle here is built by the real ``opa build`` and read back from the tarball.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from airflow_opa_mutation.cli import _bundle_builder as bundle
from airflow_opa_mutation.cli import cli
from airflow_opa_mutation.cli._local_opa import opa_binary

from ..conftest import POLICIES, REPO
from .conftest import KEY_ID, MARKER, SCOPE, Keys, org_config, record


def _claims(members: dict[str, bytes]) -> tuple[dict, dict]:
    token = json.loads(members[".signatures.json"])["signatures"][0]
    header, payload, _ = token.split(".")

    def decode(part: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    return decode(header), decode(payload)


def test_bundle_holds_policies_and_config_but_no_tests_samples_or_readmes(make_bundle, tmp_path):
    built = make_bundle("rev-1")
    members = bundle.inspect(built)
    names = set(members)

    sources = {p.relative_to(POLICIES).as_posix() for p in POLICIES.rglob("*.rego") if not p.name.endswith("_test.rego")}
    assert sources, "the policy library is empty?"
    assert sources <= names
    assert not [n for n in names if n.endswith("_test.rego")]
    assert not [n for n in names if n.endswith(".sample") or "/samples/" in n]
    assert not [n for n in names if Path(n).name.lower().startswith("readme")]
    assert "mask.rego" not in {Path(n).name for n in names}, "the decision-log mask stays on the sidecar"
    assert names - sources == {".manifest", ".signatures.json", "data.json", "lib/compiled.generated.rego"}

    manifest = json.loads(members[".manifest"])
    assert manifest["revision"] == "rev-1"
    assert manifest["roots"] == ["airflow/pod"]
    assert manifest["rego_version"] == 1
    assert manifest["metadata"]["airflow_opa_mutation"]["config"]["sha256"]

    data = json.loads(members["data.json"])
    assert set(data) == {"airflow"} and set(data["airflow"]) == {"pod"}
    config = data["airflow"]["pod"]["config"]
    assert config["policies"]["env_injection"]["params"]["env"] == {MARKER: "rev-1"}
    assert config["exempt"] == {}, "the shipped policies/data.yaml is merged in"
    record("bundle", "size of the signed bundle (policies/ + test config)", built.stat().st_size / 1024, "KiB")


def test_signature_covers_every_file_and_names_its_key(make_bundle):
    members = bundle.inspect(make_bundle("rev-1"))
    header, payload = _claims(members)
    assert header["alg"] == "RS256"
    assert payload["keyid"] == KEY_ID
    signed = {entry["name"].lstrip("/") for entry in payload["files"]}
    assert signed == set(members) - {".signatures.json"}


def test_opa_verifies_with_the_public_key_and_rejects_another(make_bundle, keys: Keys, tmp_path):
    built = make_bundle("rev-1")
    opa = opa_binary()

    def verify(public: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [opa, "build", "-b", str(built), "--verification-key", str(public), "--verification-key-id", KEY_ID,
             "--scope", SCOPE, "-o", str(tmp_path / "check.tar.gz")],
            check=False, capture_output=True, text=True,
        )

    assert verify(keys.public).returncode == 0
    wrong = verify(keys.other_public)
    assert wrong.returncode != 0
    assert "failed to verify JWT signature" in wrong.stdout + wrong.stderr


def test_build_checks_the_signature_when_given_the_public_key(keys: Keys, tmp_path):
    ok = bundle.build(POLICIES, tmp_path / "ok.tar.gz", revision="r", signing_key=keys.private,
                      verification_key=keys.public)
    assert ok.signed and ok.key_id == KEY_ID
    published = ok.output.read_bytes()
    with pytest.raises(bundle.BundleError, match="opa build failed"):
        bundle.build(POLICIES, ok.output, revision="r2", signing_key=keys.private,
                     verification_key=keys.other_public)
    # A bundle that fails its check never replaces the published one, and no temporary file is left.
    assert ok.output.read_bytes() == published
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tar.gz"]


def test_signing_is_required_unless_explicitly_unsigned(tmp_path):
    with pytest.raises(bundle.BundleError, match="signing-key is required"):
        bundle.build(POLICIES, tmp_path / "b.tar.gz", revision="r")
    unsigned = bundle.build(POLICIES, tmp_path / "u.tar.gz", revision="r", unsigned=True)
    assert not unsigned.signed
    assert ".signatures.json" not in bundle.inspect(unsigned.output)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"airflow": {"pod": {"config": {}}}, "policies": {}}, r"only data\.airflow\.pod\.config.*not both"),
        ({"airflow": {"pod": {"config": {}, "policies": {}}}}, r"only data\.airflow\.pod\.config"),
        ({"airflow": {"log": {}}}, r"only data\.airflow\.pod\.config"),
        ({"airflow": {"pod": {"config": {"exempt": []}}}}, "set both by the shipped"),
        ({"exempt": []}, "set both by the shipped"),
        ({"airflow": {"pod": {"config": []}}}, "must be a mapping"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_configuration_is_refused(keys: Keys, tmp_path, document, message):
    config = tmp_path / "org.json"
    config.write_text(json.dumps(document))
    with pytest.raises(bundle.BundleError, match=message):
        bundle.build(POLICIES, tmp_path / "b.tar.gz", config=config, revision="r", signing_key=keys.private)
    assert not (tmp_path / "b.tar.gz").exists()


def test_yaml_configuration_as_a_data_file_or_as_the_delta_the_cli_takes(keys: Keys, tmp_path):
    """The opa-run data file form and the CLI's --config delta form build the same bundle data."""
    data_file = tmp_path / "org-data.yaml"
    data_file.write_text("airflow:\n  pod:\n    config:\n      exempt:\n        system:\n          namespace: kube-system\n")
    delta = tmp_path / "org-delta.yaml"
    delta.write_text("exempt:\n  system:\n    namespace: kube-system\n")
    built = [
        json.loads(bundle.inspect(bundle.build(POLICIES, tmp_path / f"{c.stem}.tar.gz", config=c, revision="r",
                                               signing_key=keys.private).output)["data.json"])
        for c in (data_file, delta)
    ]
    assert built[0] == built[1]
    assert built[0]["airflow"]["pod"]["config"]["exempt"] == {"system": {"namespace": "kube-system"}}


def test_nested_data_files_and_rego_outside_the_root_are_refused(keys: Keys, tmp_path):
    policies = tmp_path / "policies"
    (policies / "p").mkdir(parents=True)
    (policies / "p" / "policy.rego").write_text("package airflow.pod.p\n\nx := 1\n")
    (policies / "p" / "data.json").write_text("{}")
    with pytest.raises(bundle.BundleError, match="data files below the top"):
        bundle.build(policies, tmp_path / "b.tar.gz", revision="r", signing_key=keys.private)
    (policies / "p" / "data.json").unlink()
    (policies / "p" / "other.rego").write_text("package elsewhere\n\ny := 2\n")
    with pytest.raises(bundle.BundleError, match="opa build failed"):  # OPA itself enforces the roots
        bundle.build(policies, tmp_path / "b.tar.gz", revision="r", signing_key=keys.private)


def test_default_revision_is_git_describe_else_the_version(tmp_path):
    described = subprocess.run(["git", "-C", str(POLICIES), "describe", "--tags", "--always", "--dirty"],
                               check=False, capture_output=True, text=True)
    if described.returncode == 0:
        assert bundle.default_revision(POLICIES) == described.stdout.strip()
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert bundle.default_revision(outside) == bundle.__version__


def test_the_command_and_the_script_wrapper(keys: Keys, tmp_path):
    config = org_config(tmp_path, "cli")
    out = tmp_path / "cli.tar.gz"
    runner = CliRunner()
    result = runner.invoke(cli, ["bundle", "build", "--policies", str(POLICIES), "--config", str(config),
                                 "--revision", "cli-1", "--signing-key", str(keys.private), "--scope", "prod-eu",
                                 "--verification-key", str(keys.public), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "signed airflow_bundle for scope prod-eu" in result.stdout
    assert "revision cli-1" in result.stdout and "tests" in result.stdout and "samples" in result.stdout
    assert bundle.manifest_of(out)["revision"] == "cli-1"

    result = runner.invoke(cli, ["bundle", "build", "--policies", str(POLICIES), "-o", str(tmp_path / "x.tar.gz")])
    assert result.exit_code == 1
    assert "signing-key is required" in result.stderr

    script = subprocess.run(
        [str(REPO / "scripts" / "bundle-build"), "--signing-key", str(keys.private), "--scope", "x", "--revision", "script-1",
         "-o", str(tmp_path / "script.tar.gz")],
        check=False, capture_output=True, text=True, cwd=REPO,
    )
    assert script.returncode == 0, script.stderr
    assert bundle.manifest_of(tmp_path / "script.tar.gz")["revision"] == "script-1"

    module = subprocess.run(
        [sys.executable, "-m", "airflow_opa_mutation.cli", "bundle", "keygen", "--out", str(tmp_path / "k"),
         "--bits", "2048"],
        check=False, capture_output=True, text=True,
    )
    assert module.returncode == 0, module.stderr
    assert (tmp_path / "k" / f"{KEY_ID}.pem").stat().st_mode & 0o777 == 0o600
    again = runner.invoke(cli, ["bundle", "keygen", "--out", str(tmp_path / "k"), "--bits", "2048"])
    assert again.exit_code == 1, "an existing signing key is never overwritten"
    assert "refusing to overwrite" in again.stderr


def test_a_configuration_error_fails_the_build_naming_the_key(keys: Keys, tmp_path):
    """policies/lib/config.rego's errors: a typo never ships (issue 22, item 7)."""
    config = tmp_path / "org.yaml"
    config.write_text("policies:\n  allowed_registries:\n    enabled: \"true\"\n    params: {registries: [r.example.com]}\n"
                      "  require_resource_limits:\n    params: {maximum: {memory: 1Gi}}\n")
    with pytest.raises(bundle.BundleError) as failed:
        bundle.build(POLICIES, tmp_path / "b.tar.gz", config=config, revision="r", signing_key=keys.private)
    assert "configuration error: policies.allowed_registries.enabled: must be true or false" in str(failed.value)
    assert "configuration error: policies.require_resource_limits.params.maximum: unknown parameter" in str(failed.value)
    assert not (tmp_path / "b.tar.gz").exists()

    result = CliRunner().invoke(cli, ["bundle", "build", "--policies", str(POLICIES), "--config", str(config),
                                      "--signing-key", str(keys.private), "--scope", SCOPE, "-o", str(tmp_path / "c.tar.gz")])
    assert result.exit_code == 1
    assert "policies.allowed_registries.enabled" in result.stderr


def test_an_image_exemption_not_pinned_by_digest_builds_with_a_warning(keys: Keys, tmp_path):
    config = tmp_path / "org.yaml"
    config.write_text("policies:\n  deny_privileged:\n    params: {exempt_images: ['registry.example.com/debug/*']}\n")
    result = CliRunner().invoke(cli, ["bundle", "build", "--policies", str(POLICIES), "--config", str(config),
                                      "--signing-key", str(keys.private), "--scope", SCOPE, "-o", str(tmp_path / "b.tar.gz")])
    assert result.exit_code == 0, result.output
    assert "warning: policies.deny_privileged.params.exempt_images[0]" in result.stderr


def test_a_signed_build_needs_a_scope_and_opa_refuses_another_scope(keys: Keys, tmp_path):
    """Issue 25, item 3: a bundle carries the deployment it is for; OPA's verification checks it."""
    runner = CliRunner()
    out = tmp_path / "a.tar.gz"
    args = ["bundle", "build", "--policies", str(POLICIES), "--signing-key", str(keys.private), "-o", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1 and "--scope is required" in result.stderr
    assert not out.exists()
    assert runner.invoke(cli, [*args, "--scope", "prod-eu"]).exit_code == 0
    assert _claims(bundle.inspect(out))[1]["scope"] == "prod-eu"

    def verify(scope: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [opa_binary(), "build", "--bundle", str(out), "--verification-key", str(keys.public),
             "--verification-key-id", KEY_ID, "--scope", scope, "-o", str(tmp_path / "v.tar.gz")],
            check=False, capture_output=True, text=True)

    assert verify("prod-eu").returncode == 0
    refused = verify("prod-us")
    assert refused.returncode != 0 and "scope mismatch" in refused.stderr + refused.stdout
    # a scope is a name (it is compared with the sidecar's AOM_DEPLOYMENT)
    with pytest.raises(bundle.BundleError, match="use letters, digits"):
        bundle.build(POLICIES, tmp_path / "b.tar.gz", signing_key=keys.private, scope="bad scope!")


def test_the_keys_command_prints_what_the_sidecars_trust(keys: Keys, tmp_path):
    """`bundle keys`: AOM_BUNDLE_KEYS for deploy/opa/config.yaml, each key named by its file."""
    runner = CliRunner()
    result = runner.invoke(cli, ["bundle", "keys", str(keys.public)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {KEY_ID: {"algorithm": "RS256", "key": keys.public.read_text().strip()}}
    assert "\n" not in result.stdout.strip(), "one line: a ConfigMap literal"
    refused = runner.invoke(cli, ["bundle", "keys", str(keys.private)])
    assert refused.exit_code == 1 and "<key id>.pub.pem" in refused.stderr
    renamed = tmp_path / "airflow_bundle.pub.pem"
    renamed.write_text(keys.private.read_text())
    refused = runner.invoke(cli, ["bundle", "keys", str(renamed)])
    assert refused.exit_code == 1 and "never give the private key" in refused.stderr


def _holds(bundle_file: Path, tmp_path: Path, query: str = "data.airflow.pod.lib.compiled.holds") -> object:
    done = subprocess.run([opa_binary(None), "eval", "--bundle", str(bundle_file), "--format", "json", query],
                          check=True, capture_output=True, text=True, cwd=tmp_path)
    return json.loads(done.stdout)["result"][0]["expressions"][0]["value"]


def test_the_bundle_is_compiled_for_its_configuration_unless_dynamic(keys: Keys, tmp_path):
    """The generated module is in the bundle and in force for the bundled configuration; --dynamic (and a
    configuration changed in the bundle's data without compiling again) leave the library dynamic."""
    config = tmp_path / "org.yaml"
    config.write_text("policies:\n  image_pull_policy:\n    enabled: true\n")
    compiled = bundle.build(POLICIES, tmp_path / "c.tar.gz", config=config, revision="r", signing_key=keys.private)
    assert compiled.compiled is not None and "image_pull_policy" in compiled.compiled
    assert "compiled for" in compiled.summary()
    members = bundle.inspect(compiled.output)
    generated = members["lib/compiled.generated.rego"].decode()
    assert generated.startswith("# Code generated by airflow-opa-mutation compile; DO NOT EDIT.\n")
    assert 'data.airflow.pod.policies.image_pull_policy.patch' in generated
    assert "env_injection" not in generated.split("enabled :=")[1].split("\n")[0], "a disabled policy is compiled in"
    assert _holds(compiled.output, tmp_path) is True
    enabled = _holds(compiled.output, tmp_path, "data.airflow.pod.lib.framework._enabled")
    assert set(enabled) == set(compiled.compiled)  # type: ignore[arg-type]

    dynamic = bundle.build(POLICIES, tmp_path / "d.tar.gz", config=config, revision="r", signing_key=keys.private,
                           dynamic=True)
    assert dynamic.compiled is None and "lib/compiled.generated.rego" not in bundle.inspect(dynamic.output)
    assert _holds(dynamic.output, tmp_path) is False


def test_a_generated_module_in_the_library_is_left_out_and_compiled_again(keys: Keys, tmp_path):
    """A module compiled earlier (for another configuration) and left among the policies is not bundled:
    the build generates the one for its own configuration."""
    import shutil

    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies, ignore=shutil.ignore_patterns("*_test.rego", "samples"))
    stale = policies / "lib" / "stale.rego"
    stale.write_text("# Code generated by airflow-opa-mutation compile; DO NOT EDIT.\npackage airflow.pod.lib.compiled\n\nholds := true\n")
    built = bundle.build(policies, tmp_path / "b.tar.gz", revision="r", signing_key=keys.private)
    assert "lib/stale.rego" not in bundle.inspect(built.output)
    assert built.excluded["generated"] == ["lib/stale.rego"]


def test_the_compile_command_writes_a_module_opa_loads_beside_the_library(tmp_path):
    """`compile` for a disk-loaded set-up: OPA loads the library, the configuration as a data file and the
    generated module, and the module is in force; a configuration error writes nothing."""
    config = tmp_path / "org.yaml"
    config.write_text("airflow:\n  pod:\n    config:\n      policies:\n        deny_privileged:\n          enabled: false\n")
    output = tmp_path / "out" / "compiled.rego"
    result = CliRunner().invoke(cli, ["compile", "--policies", str(POLICIES), "--config", str(config),
                                      "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "deny_privileged" not in result.output and "pod_security" in result.output
    done = subprocess.run([opa_binary(None), "eval", "--data", str(POLICIES), "--data", str(config), "--data",
                           str(output), "--ignore", "*_test.rego", "--format", "json",
                           "[data.airflow.pod.lib.compiled.holds, data.airflow.pod.lib.framework._enabled]"],
                          check=True, capture_output=True, text=True, cwd=tmp_path)
    holds, enabled = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    assert holds is True and "deny_privileged" not in enabled and "pod_security" in enabled

    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  deny_privileged:\n    enabled: 3\n")
    refused = CliRunner().invoke(cli, ["compile", "--policies", str(POLICIES), "--config", str(bad),
                                       "--output", str(tmp_path / "no.rego")])
    assert refused.exit_code == 1 and "policies.deny_privileged.enabled" in refused.output
    assert not (tmp_path / "no.rego").exists()
