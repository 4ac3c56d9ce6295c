"""The command line installed without its extra: every command either works or says, in one line and with
exit status 2, which extra to install; never a traceback (issue 25, item 15: ``doctor`` crashed with
``No module named 'opa_client'``).

Each case runs the console script's entry point in a fresh interpreter whose import system refuses the
named modules, as on a machine where they were never installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_opa_mutation.cli import COMMANDS

#: What ``pip install 'airflow-opa-mutation[cli]'`` adds (pyproject.toml's ``cli`` extra), by import name.
#: ``requests`` is also a dependency of the kubernetes client, so it is rarely missing; refused all the same.
CLI_EXTRA = ("click", "rich", "yaml", "opa_client", "requests", "cryptography")
INSTALL_CLI = "pip install 'airflow-opa-mutation[cli]'"

_RUN = """
import importlib.abc, json, sys

BLOCKED = set(json.loads(sys.argv[1]))

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
for name in list(sys.modules):  # nothing the interpreter imported at start-up stays importable
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
sys.argv = ["airflow-opa-mutation", *json.loads(sys.argv[2])]
from airflow_opa_mutation.cli import main
main()
"""


def run_without(blocked: tuple[str, ...], *args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(list(blocked)), json.dumps(list(args))],
        capture_output=True, text=True, check=False, cwd=cwd, timeout=120,
    )


def assert_names_the_extra(done: subprocess.CompletedProcess[str], module: str, install: str = INSTALL_CLI) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert install in lines[0] and module in lines[0], lines[0]


@pytest.mark.parametrize("module", CLI_EXTRA)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_works_or_names_the_extra(command, module):
    """A command's ``--help`` loads the command (and what its module imports): it either shows the help
    or names the extra."""
    done = run_without((module,), command, "--help")
    if done.returncode == 0:
        assert "Traceback" not in done.stderr and "Usage:" in done.stdout, done.stderr
    else:
        assert_names_the_extra(done, module)


def test_doctor_without_opa_client_names_the_extra():
    """The reported crash, as reported: doctor against an OPA, opa-python-client not installed."""
    assert_names_the_extra(run_without(("opa_client",), "doctor", "--url", "http://127.0.0.1:9"), "opa_client")


def test_the_command_list_without_click_names_the_extra():
    for args in ((), ("--help",), ("--version",), ("doctor",)):
        assert_names_the_extra(run_without(("click",), *args), "click")


def test_bundle_keygen_without_cryptography_names_the_extra(tmp_path):
    """cryptography is imported only when a key pair is made."""
    done = run_without(("cryptography",), "bundle", "keygen", "--out", str(tmp_path / "keys"))
    assert_names_the_extra(done, "cryptography")
    assert not (tmp_path / "keys" / "airflow_bundle.pem").exists()


def test_admission_manifests_without_yaml_names_the_extra(tmp_path):
    """PyYAML is imported only when the manifests are printed."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    done = run_without(("yaml",), "admission", "manifests", "--url", "https://opa.example:8443", "--ca-file", str(ca))
    assert_names_the_extra(done, "yaml")


def test_scan_without_airflow_names_the_airflow_extra(tmp_path):
    done = run_without(("airflow",), "scan", str(tmp_path), "--url", "http://127.0.0.1:9")
    assert_names_the_extra(done, "airflow", install="pip install 'airflow-opa-mutation[airflow,cli]'")
