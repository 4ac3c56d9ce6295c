"""The command line's group and lazy command loading (imported by ``airflow_opa_mutation.cli``).

Built on **click** and **rich** (the ``cli`` extra). Why these two:

- click is the most widely used Python CLI library and is already installed wherever Airflow is (Airflow's
  own dependencies pull it in), so the extra adds nothing new to a scheduler image; it gives composable
  commands, typed options, ``--help`` for free, usage errors with exit code 2, and ``CliRunner`` for tests.
  typer would add a layer (and its own pins) on top of click for type-hint-driven signatures, which a
  five-command tool does not need.
- rich renders coloured diffs, tables and progress bars, degrades to plain text when stdout is not a
  terminal or ``NO_COLOR`` is set (and ``--color never``), and is also already an Airflow dependency.

Exit codes, the same for every command: **0** allowed / clean, **1** something would be denied or failed
(an evaluation error, a sample that does not match, a failing check), **2** usage or runtime error (bad
arguments, unreadable file, OPA not startable). ``--output json`` prints one JSON document on stdout
(schema: ``docs/cli-output.schema.json``); people get coloured text.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import NamedTuple

import click

from .._version import __version__
from ._extras import missing_extra, missing_extra_message


class _Entry(NamedTuple):
    module: str  #: the module under airflow_opa_mutation.cli that defines the command (same name)
    summary: str  #: the first line of the command's help, for the command list (tested to match)


#: Every command, imported only when it runs or its own help is shown: ``--version`` and ``--help`` import
#: none of them (nor rich, nor the kubernetes client).
COMMANDS: dict[str, _Entry] = {
    "admission": _Entry(
        "admission",
        "Print the Kubernetes admission webhook configurations that put the policies in front of the API server.",
    ),
    "bundle": _Entry(
        "bundle",
        "Build a signed OPA bundle of the policies (bundle build ...) or make a key pair (bundle keygen ...).",
    ),
    "compile": _Entry(
        "compile",
        "Compile the library for one configuration: merged settings and static references to the enabled "
        "policies, in one generated module to load beside the library and that configuration.",
    ),
    "doctor": _Entry(
        "doctor",
        "Check the setup: the effective configuration (and where each value came from), OPA reachability, "
        "TLS and authentication, that OPA refuses writes, OPA's version (at least 1.21.3), that the decision is "
        "defined for a sample pod, and bundle status.",
    ),
    "exemptions": _Entry(
        "exemptions",
        "Report on the configured exemptions: how many pods each let through (exemptions report ...).",
    ),
    "preview": _Entry(
        "preview",
        "Show what the hook would do to pods: the diff, each op and its policy, deny and warn messages.",
    ),
    "scan": _Entry(
        "scan", "Build the pod of every task in DAGS_FOLDER with Airflow itself and evaluate it in dry-run."
    ),
    "verify": _Entry("verify", "Run every policy's samples/ against its expected result and check convergence."),
}


def summary_command(name: str) -> click.Command:
    """A stand-in for command ``name`` that knows only its summary: what the command list shows."""
    return click.Command(name, help=COMMANDS[name].summary)


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command = getattr(importlib.import_module(f".{entry.module}", __package__), cmd_name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from :data:`COMMANDS`, without importing a command."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, summary_command(name).get_short_help_str(limit)) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit codes: 0 allowed/clean, 1 denied or failing, 2 usage or runtime error.",
)
@click.version_option(__version__, prog_name="airflow-opa-mutation")
def cli() -> None:
    """Write, test and roll out OPA pod-mutation policies for Airflow.

    Every command talks to a running OPA (--url, default: the [opa_mutation] configuration) or, given
    --policies DIR (and optionally --config FILE), starts the pinned OPA for the duration of the command.
    """


def main() -> None:
    """The console script's entry point: an unexpected exception is a runtime error (2), never a verdict (1)."""
    try:
        cli(prog_name="airflow-opa-mutation", standalone_mode=True)
    except Exception as exc:
        from ._errors import EXIT_USAGE

        missing = missing_extra(exc)
        if missing is not None:  # a command (or what it imports when it runs) needs an extra
            click.echo(missing_extra_message(*missing), err=True)
            sys.exit(EXIT_USAGE)
        traceback.print_exc()
        click.echo("airflow-opa-mutation: internal error (the traceback above); exit status 2", err=True)
        sys.exit(EXIT_USAGE)


__all__ = ["COMMANDS", "cli", "main"]
