"""Exit codes, the same for every command, and the errors that end a command with code 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import ConfigError
from ._output import emit_document

EXIT_OK = 0  #: allowed / clean
EXIT_FAILED = 1  #: something would be denied, or failed (evaluation error, sample mismatch, failing check)
EXIT_USAGE = 2  #: usage or runtime error: bad arguments, unreadable file, OPA not startable or not reachable

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A usage or runtime error: printed as ``Error: ...`` on stderr, exit code 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.reason = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")


class OpaStartError(RuntimeError):
    """The local OPA a command needs (``--policies``) could not start; ``fix`` says what to do."""

    def __init__(self, message: str, fix: str) -> None:
        self.fix = fix
        super().__init__(message)


def handle_errors(command: str) -> Callable[[F], F]:
    """Turn configuration and OPA start-up failures into exit code 2; in JSON mode also a JSON document."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                try:
                    return function(*args, **kwargs)
                except ConfigError as exc:
                    raise CliError(str(exc), fix="correct the [opa_mutation] value (see `doctor`)") from exc
                except OpaStartError as exc:
                    raise CliError(str(exc), fix=exc.fix) from exc
            except CliError as exc:
                if kwargs.get("output_format") == "json":
                    emit_document(command, EXIT_USAGE, {"error": {"message": exc.reason, "fix": exc.fix}})
                raise

        return wrapper  # type: ignore[return-value]

    return decorate
