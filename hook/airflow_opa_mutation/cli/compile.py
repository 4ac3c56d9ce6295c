"""``compile``: the library specialized for one configuration, for set-ups that load policies from disk
(``opa run --server policies/ config.yaml compiled.rego``). ``bundle build`` does the same into the bundle.

What is generated and why it can never decide differently: ``_compiler``'s docstring.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._compiler import CompileError, compile_library
from ._errors import EXIT_FAILED
from ._local_opa import OpaNotFound, opa_binary


@click.command("compile")
@click.option(
    "--policies",
    type=click.Path(path_type=Path),
    default=Path("policies"),
    help="The policy library (default: policies).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="The configuration OPA loads beside the library, YAML or JSON: a data file (airflow: pod: config: ...) "
    "or just the configuration (policies: ..., exempt: ...). Default: the shipped one.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("compiled.generated.rego"),
    show_default=True,
    help="The generated module: load it with the library and the same configuration.",
)
@click.option("--opa", help="The OPA binary (default: $AOM_OPA_BIN, else opa on PATH).")
def compile(policies: Path, config: Path | None, output: Path, opa: str | None) -> None:
    """Compile the library for one configuration: merged settings and static references to the enabled
    policies, in one generated module to load beside the library and that configuration.

    The library uses the module only while the configuration in force is the one it was compiled from;
    otherwise it evaluates as without it. A configuration error fails the command. Exit status: 0
    written, 1 not compiled, 2 usage error."""
    try:
        compiled = compile_library(policies, config, opa=opa_binary(opa))
    except (CompileError, OpaNotFound) as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_FAILED) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    pending = output.with_name(f".{output.name}.tmp")
    pending.write_text(compiled.text)
    pending.replace(output)
    click.echo(f"compiled {len(compiled.enabled)} enabled policies into {output}: {', '.join(compiled.enabled)}")


__all__ = ["compile"]
