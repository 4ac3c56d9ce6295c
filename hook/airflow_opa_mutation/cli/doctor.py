"""``doctor``: is this installation set up right? The effective configuration and a checklist with fixes.

The checks themselves are in ``_doctor_checks`` (one function each, listed in order there); this module
gathers them and prints the result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .._version import OPA_VERSION as PINNED_OPA
from ..config import KEYS, Settings, Source, settings_from_raw
from ..errors import ConfigError
from ._doctor_checks import CONFIG_CHECKS, Check, check_registered, run_checks
from ._errors import EXIT_FAILED, EXIT_OK, CliError, handle_errors
from ._opa_provider import OpaProvider, configured_sources, load_config_file, opa_options
from ._output import Output, emit_document, make_output, output_options

_SECRET_KEYS = frozenset({"token"})
_STYLES = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red"), "skip": ("skip", "dim")}


def _configuration_check(sources: dict[str, Source]) -> tuple[Settings | None, Check]:
    try:
        settings = settings_from_raw(sources)
    except ConfigError as exc:
        fix = (
            f"correct {exc.key} (environment variable AIRFLOW__OPA_MUTATION__{exc.key.upper()} or "
            f"[opa_mutation] {exc.key} in airflow.cfg)"
        )
        return None, Check("configuration", "fail", str(exc), fix)
    return settings, Check("configuration", "ok", "every [opa_mutation] value is valid")


def _opa_checks(
    settings: Settings | None, policies: Path | None, config_file: Path | None, output: Output
) -> tuple[list[Check], dict[str, Any]]:
    """The checks against OPA: a local one (``--policies``) or the configured one, when the settings are valid."""
    if policies is not None:
        config = load_config_file(config_file) if config_file is not None else None
        with OpaProvider(policies=policies, config=config, warn=output.err.print) as provider:
            return run_checks(provider.hook().settings, local=True)
    if settings is None:
        return [], {}
    if config_file is not None:
        raise CliError("--config needs --policies: a running OPA serves its own configuration data")
    return run_checks(settings, local=False)


def _shown(source: Source) -> str | None:
    if source.raw is None:
        return None
    return "<set>" if source.key in _SECRET_KEYS else source.raw


@click.command()
@opa_options
@output_options
@handle_errors("doctor")
def doctor(url: str | None, policies: Path | None, config_file: Path | None, output_format: str, color: str) -> None:
    """Check the setup: the effective configuration (and where each value came from), OPA reachability,
    TLS and authentication, that OPA refuses writes, OPA's version (at least 1.21.3), that the decision is
    defined for a sample pod, and bundle status.

    Prints a checklist with a fix for each failure.

    Exit status: 0 no check failed (warnings allowed), 1 a check failed, 2 usage or runtime error.
    """
    output = make_output(output_format, color)
    sources = configured_sources(url)
    settings, configuration_check = _configuration_check(sources)
    checks = [configuration_check, *check_registered()]
    if settings is not None:
        checks += [found for check in CONFIG_CHECKS for found in check(settings)]
    opa_checks, facts = _opa_checks(settings, policies, config_file, output)
    checks += opa_checks
    code = EXIT_FAILED if any(c.status == "fail" for c in checks) else EXIT_OK
    configuration = [{"key": key, "value": _shown(sources[key]), "origin": sources[key].origin} for key in KEYS]
    if output.json:
        members = {"configuration": configuration, "checks": [dataclasses.asdict(c) for c in checks], "facts": facts}
        emit_document("doctor", code, members)
    else:
        _render(output, configuration, checks)
    raise click.exceptions.Exit(code)


def _render(output: Output, configuration: list[dict[str, Any]], checks: list[Check]) -> None:
    table = Table(title="effective configuration ([opa_mutation])", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("from")
    defaults = Settings()
    for row in configuration:
        value = row["value"]
        shown = Text(str(value)) if value is not None else Text(f"{getattr(defaults, str(row['key']))!s}", style="dim")
        table.add_row(row["key"], shown, row["origin"])
    output.console.print(table)
    output.console.print()
    for c in checks:
        label, style = _STYLES[c.status]
        line = Text(f"[{label:^4}] ", style=style)
        line.append(f"{c.name}: ", style="bold")
        line.append(c.detail)
        output.console.print(line)
        if c.fix and c.status in ("fail", "warn"):
            output.console.print(Text(f"       fix: {c.fix}", style="cyan"))
    failed = sum(1 for c in checks if c.status == "fail")
    summary = f"{failed} check(s) failed" if failed else "all checks passed"
    output.console.print()
    output.console.print(Text(summary, style="bold red" if failed else "bold green"))


__all__ = ["PINNED_OPA", "doctor"]
