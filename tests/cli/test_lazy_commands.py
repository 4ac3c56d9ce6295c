"""``--version`` and ``--help`` import no command (nor rich, the kubernetes client or OPA's client), and
the command list they print is each command's own summary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_opa_mutation.cli import COMMANDS, cli, summary_command

_RUN = """
import json, sys
from airflow_opa_mutation.cli import main
sys.argv = ["airflow-opa-mutation", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

HEAVY = ("rich", "kubernetes", "opa_client", "requests", "yaml", "airflow_opa_mutation.hook")


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_import_no_command(args):
    done = subprocess.run([sys.executable, "-c", _RUN, json.dumps(args)], capture_output=True, text=True, check=False)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["code"] == 0, done.stderr
    loaded = report["modules"]
    commands = {f"airflow_opa_mutation.cli.{entry.module}" for entry in COMMANDS.values()}
    assert not commands & set(loaded)
    assert not [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY]


def test_help_lists_every_command_with_its_own_summary(run):
    for name in COMMANDS:
        command = cli.get_command(None, name)  # imports the module
        assert command is not None and command.name == name
        for limit in (45, 80, 1000):
            assert summary_command(name).get_short_help_str(limit) == command.get_short_help_str(limit), name
    listed = run("--help").stdout
    for name in COMMANDS:
        assert f"  {name}  " in listed


def test_a_command_s_help_loads_it(run):
    result = run("bundle", "build", "--help")
    assert result.exit_code == 0
    assert "--signing-key" in result.stdout and "--verification-key" in result.stdout
