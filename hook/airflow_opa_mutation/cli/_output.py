"""Where and how a command writes: rich text for people on stdout, or one JSON document for machines.

rich is imported when a command makes its output, not with this module: ``--help`` and ``--version``
stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

#: Version of the ``--output json`` documents (docs/cli-output.schema.json).
JSON_SCHEMA_VERSION = 1

F = TypeVar("F", bound=Callable[..., Any])


def emit_document(command: str, exit_code: int, members: Mapping[str, Any]) -> None:
    """Print a command's JSON document: schema version, command and exit code, then ``members``."""
    document = {"schema_version": JSON_SCHEMA_VERSION, "command": command, "exit_code": exit_code, **members}
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


@dataclass
class Output:
    """One command's output: ``console`` (stdout) and ``err`` (stderr) for people, or JSON."""

    format: str
    console: Console
    err: Console

    @property
    def json(self) -> bool:
        return self.format == "json"

    def progress_enabled(self) -> bool:
        """Progress bars only for a person watching a terminal (stderr), never in JSON mode."""
        return not self.json and self.err.is_terminal


def make_output(fmt: str, color: str) -> Output:
    from rich.console import Console

    force = True if color == "always" else None
    no_color = True if color == "never" else None
    width = None
    if not sys.stdout.isatty():  # a file or a pipe: don't squeeze tables into 80 columns
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() else 200
    console = Console(
        width=width,
        force_terminal=force,
        no_color=no_color,
        color_system=None if color == "never" else "auto",
        highlight=False,
        markup=False,  # text from pods and policies is never rich markup ("[opa_mutation]", "[policy]")
        soft_wrap=True,
        emoji=False,
    )
    err = Console(stderr=True, force_terminal=force, no_color=no_color, highlight=False, markup=False, emoji=False)
    return Output(fmt, console, err)


def output_options(function: F) -> F:
    """``--output text|json`` and ``--color auto|always|never``."""
    return output_options_with(("text", "json"))(function)


def output_options_with(formats: tuple[str, ...], extra_help: str = "") -> Callable[[F], F]:
    """:func:`output_options` for a command that writes more formats than text and json."""

    def decorate(function: F) -> F:
        function = click.option(
            "--color",
            type=click.Choice(["auto", "always", "never"]),
            default="auto",
            show_default=True,
            help="Colour for people; auto = when stdout is a terminal and NO_COLOR is unset.",
        )(function)
        return click.option(
            "--output",
            "-o",
            "output_format",
            type=click.Choice(list(formats)),
            default="text",
            show_default=True,
            help="text for people, json for machines (one document on stdout, schema in docs/)." + extra_help,
        )(function)

    return decorate


@contextlib.contextmanager
def maybe_progress(output: Output, description: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for people at a terminal; a no-op otherwise. Yields ``advance()``."""
    if not output.progress_enabled() or total < 2:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.err,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
