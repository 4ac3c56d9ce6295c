"""``airflow-opa-mutation``: preview, verify, scan and doctor, for policy authors and operators.

Built on **click** and **rich** (the ``cli`` extra). Why these two:

- click is the most widely used Python CLI library and is already installed wherever Airflow is (Airflow's
  own dependencies pull it in), so the extra adds nothing new to a scheduler image; it gives composable
  commands, typed options, ``--help`` for free, usage errors with exit code 2, and ``CliRunner`` for tests.
  typer would add a layer (and its own pins) on top of click for type-hint-driven signatures, which a
  four-command tool does not need.
- rich renders coloured diffs, tables and progress bars, degrades to plain text when stdout is not a
  terminal or ``NO_COLOR`` is set (and ``--color never``), and is also already an Airflow dependency.

Exit codes, the same for every command: **0** allowed / clean, **1** something would be denied or failed
(an evaluation error, a sample that does not match, a failing check), **2** usage or runtime error (bad
arguments, unreadable file, OPA not startable). ``--output json`` prints one JSON document on stdout
(schema: ``docs/cli-output.schema.json``); people get coloured text.
"""

from __future__ import annotations

import sys
import traceback

import click

from .._version import __version__
from . import doctor, preview, scan, verify
from ._common import EXIT_USAGE  # the modules stay reachable as cli.<name>; the commands are in them


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit codes: 0 allowed/clean, 1 denied or failing, 2 usage or runtime error.",
)
@click.version_option(__version__, prog_name="airflow-opa-mutation")
def cli() -> None:
    """Write, test and roll out OPA pod-mutation policies for Airflow.

    Every command talks to a running OPA (--url, default: the [opa_mutation] configuration) or, given
    --policies DIR (and optionally --config FILE), starts the pinned OPA for the duration of the command.
    """


cli.add_command(preview.preview)
cli.add_command(verify.verify)
cli.add_command(scan.scan)
cli.add_command(doctor.doctor)


@cli.command(
    "bundle",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bundle(args: tuple[str, ...]) -> None:
    """Build a signed OPA bundle of the policies (bundle build ...) or make a key pair (bundle keygen ...).

    The same tool as scripts/bundle-build; `bundle build --help` lists its options.
    """
    from .. import bundle as bundle_tool

    sys.exit(bundle_tool.main(list(args)))


def main() -> None:
    """The console script's entry point: an unexpected exception is a runtime error (2), never a verdict (1)."""
    try:
        cli(prog_name="airflow-opa-mutation", standalone_mode=True)
    except Exception:
        traceback.print_exc()
        click.echo("airflow-opa-mutation: internal error (the traceback above); exit status 2", err=True)
        sys.exit(EXIT_USAGE)


__all__ = ["cli", "main"]
