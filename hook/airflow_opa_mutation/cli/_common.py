"""What every command shares: exit codes, output (people or machines), pod documents, and the OPA to ask."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console
from rich.text import Text

from ..config import Settings, load_settings, read_raw, settings_from_raw
from ..errors import ConfigError, Message, OpaMutationError, PodDenied
from ..hook import MutationHook, Outcome

#: Exit codes, the same for every command (documented in ``--help`` and the README).
EXIT_OK = 0  #: allowed / clean
EXIT_FAILED = 1  #: something would be denied, or failed (evaluation error, sample mismatch, failing check)
EXIT_USAGE = 2  #: usage or runtime error: bad arguments, unreadable file, OPA not startable or not reachable

#: Version of the ``--output json`` documents (docs/cli-output.schema.json).
JSON_SCHEMA_VERSION = 1

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A usage or runtime error: printed as ``Error: ...`` on stderr, exit code 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.reason = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")


# -- output ---------------------------------------------------------------------------------------------


@dataclass
class Output:
    """Where and how a command writes: rich text for people on stdout, or one JSON document."""

    format: str
    console: Console
    err: Console

    @property
    def json(self) -> bool:
        return self.format == "json"

    def emit_json(self, document: Mapping[str, Any]) -> None:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))

    def progress_enabled(self) -> bool:
        """Progress bars only for a person watching a terminal (stderr), never in JSON mode."""
        return not self.json and self.err.is_terminal


def make_output(fmt: str, color: str) -> Output:
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
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, json for machines (one document on stdout, schema in docs/).",
    )(function)


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
                    click.echo(
                        json.dumps(
                            {
                                "schema_version": JSON_SCHEMA_VERSION,
                                "command": command,
                                "exit_code": EXIT_USAGE,
                                "error": {"message": exc.reason, "fix": exc.fix},
                            },
                            indent=2,
                        )
                    )
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


# -- the OPA a command asks -------------------------------------------------------------------------------


class OpaStartError(RuntimeError):
    def __init__(self, message: str, fix: str) -> None:
        self.fix = fix
        super().__init__(message)


def opa_options(function: F) -> F:
    """``--url`` (a running OPA) or ``--policies DIR`` [``--config FILE``] (a local OPA for this command)."""
    function = click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="With --policies: a YAML/JSON configuration delta, served as data.airflow.pod.config.",
    )(function)
    function = click.option(
        "--policies",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Start the pinned OPA serving this policy folder for the duration of the command.",
    )(function)
    return click.option(
        "--url",
        help="A running OPA's base URL (default: [opa_mutation] url, from the environment or airflow.cfg).",
    )(function)


def base_settings(url: str | None) -> Settings:
    """The configured settings (environment, airflow.cfg, defaults), with ``url`` overriding when given."""
    raw = read_raw()
    if url is not None:
        from ..config import Source

        raw = {**raw, "url": Source("url", "--url", url)}
    return settings_from_raw(raw)


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"cannot read the configuration delta {path}: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CliError(f"{path}: a configuration delta must be a mapping, got {type(document).__name__}")
    return document


@dataclass
class OpaProvider:
    """Hands out hooks: against ``--url``, or against one local OPA per distinct configuration delta.

    With ``--policies``, each delta is written as ``{"airflow": {"pod": {"config": delta}}}`` to a data file
    served next to the policies (OPA merges data files key by key).
    """

    url: str | None = None
    policies: Path | None = None
    config: dict[str, Any] | None = None
    audit_annotation: bool | None = None
    warn: Callable[[str], None] = lambda message: None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _hooks: dict[str, MutationHook] = field(default_factory=dict)
    _base: Settings | None = None
    _tmp: Path | None = None

    @property
    def local(self) -> bool:
        return self.policies is not None

    def __enter__(self) -> OpaProvider:
        if self.policies is not None and self.url is not None:
            raise CliError("give either --url (a running OPA) or --policies (start one), not both")
        if self.config is not None and self.policies is None:
            raise CliError("--config needs --policies: a running OPA serves its own configuration data")
        if self.policies is None:
            self._base = base_settings(self.url)
        else:
            try:
                self._base = load_settings()
            except ConfigError as exc:
                self.warn(f"ignoring the configuration ({exc}); using the defaults with the local OPA")
                self._base = Settings()
        if self.audit_annotation is not None:
            self._base = dataclasses.replace(self._base, audit_annotation=self.audit_annotation)
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks.values():
            hook.close()
        self._hooks.clear()
        self._stack.close()

    @property
    def settings(self) -> Settings:
        assert self._base is not None, "use OpaProvider as a context manager"
        return self._base

    def hook(self, delta: Mapping[str, Any] | None = None) -> MutationHook:
        """The hook for pods needing this configuration delta (ignored with --url, and with --config)."""
        if self.policies is None:
            key = ""
        else:
            effective = self.config if self.config is not None else dict(delta or {})
            key = json.dumps(effective, sort_keys=True)
        hook = self._hooks.get(key)
        if hook is None:
            settings = self.settings if self.policies is None else self._start(json.loads(key))
            hook = self._hooks[key] = MutationHook(settings)
        return hook

    def _start(self, delta: dict[str, Any]) -> Settings:
        from ..local_opa import LocalOpa, OpaNotFound

        assert self.policies is not None
        paths: list[Path] = [self.policies]
        if delta:
            if self._tmp is None:
                self._tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="aom-cli-")))
            data = self._tmp / f"config-{len(self._hooks)}.json"
            data.write_text(json.dumps({"airflow": {"pod": {"config": delta}}}))
            paths.append(data)
        try:
            opa = LocalOpa(paths)
            opa.start()
        except OpaNotFound as exc:
            raise OpaStartError(str(exc), "run scripts/install-tools, or set AOM_OPA_BIN to an opa binary") from None
        except (RuntimeError, OSError) as exc:
            raise OpaStartError(
                f"OPA could not start with {', '.join(map(str, paths))}: {exc}",
                "fix the Rego or data error above (`opa check` names the file and line)",
            ) from None
        self._stack.callback(opa.stop)
        return dataclasses.replace(
            self.settings,
            url=opa.url,
            token=None,
            token_file=None,
            ca_bundle=None,
            client_cert=None,
            client_key=None,
            timeout=max(self.settings.timeout, 10.0),
        )


# -- pod documents ----------------------------------------------------------------------------------------


@dataclass
class PodDocument:
    """One pod to evaluate: from a file (``source`` names file and document), bare or in a policy sample."""

    source: str
    pod: dict[str, Any]
    config: dict[str, Any] | None = None
    description: str | None = None


def read_text(spec: str) -> str:
    if spec == "-":
        return sys.stdin.read()
    try:
        return Path(spec).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {spec}: {exc.strerror or exc}") from None


def load_pod_documents(spec: str) -> list[PodDocument]:
    """Every pod in a YAML/JSON file (or ``-``): bare pods, ``kind: List`` items, or samples with ``pod:``."""
    name = "<stdin>" if spec == "-" else spec
    text = read_text(spec)
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise CliError(f"{name}: not YAML or JSON: {exc}") from None
    pods: list[PodDocument] = []
    for number, document in enumerate(documents, 1):
        where = f"{name}#{number}" if len(documents) > 1 else name
        if isinstance(document, dict) and document.get("kind") == "List" and isinstance(document.get("items"), list):
            for index, item in enumerate(document["items"]):
                pods.append(_pod_document(f"{where}[{index}]", item))
        else:
            pods.append(_pod_document(where, document))
    if not pods:
        raise CliError(f"{name}: no pod in it")
    return pods


def _pod_document(where: str, document: Any) -> PodDocument:
    if isinstance(document, dict) and isinstance(document.get("pod"), dict):
        config = document.get("config")
        description = document.get("description")
        return PodDocument(
            where,
            _plain(document["pod"]),
            config if isinstance(config, dict) else None,
            description if isinstance(description, str) else None,
        )
    if isinstance(document, dict) and ("spec" in document or document.get("kind") == "Pod"):
        if document.get("kind", "Pod") != "Pod":
            raise CliError(f"{where}: a {document.get('kind')}, not a Pod")
        return PodDocument(where, _plain(document))
    raise CliError(f"{where}: neither a pod (kind: Pod / spec:) nor a policy sample (pod:)")


def _plain(document: dict[str, Any]) -> dict[str, Any]:
    """YAML's timestamps and other non-JSON scalars as the JSON Kubernetes would send (strings)."""
    result: dict[str, Any] = json.loads(json.dumps(document, default=_json_default))
    return result


def _json_default(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat()).replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


def decode_pod(document: PodDocument) -> Any:
    from .. import _pod_codec

    try:
        return _pod_codec.decode(document.pod)
    except _pod_codec.DecodeError as exc:
        raise CliError(f"{document.source}: not a pod the kubernetes client can represent: {exc}") from None


# -- outcomes: as JSON and as text ----------------------------------------------------------------------


def verdict(outcome: Outcome) -> str:
    if isinstance(outcome.error, PodDenied):
        return "denied"
    if outcome.error is not None:
        return "failed"
    return "mutated" if outcome.changed else "unchanged"


def failing(outcome: Outcome) -> bool:
    return outcome.error is not None


def messages_json(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    return [{"policy": m.policy, "msg": m.msg} for m in messages]


def ops_json(outcome: Outcome) -> list[dict[str, Any]]:
    decision = outcome.decision
    if decision is None:
        return []
    return [{"index": op.index, "policy": op.policy, **op.op} for op in decision.patch]


def error_json(error: OpaMutationError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": type(error).__name__, "message": str(error)}


def outcome_json(outcome: Outcome, *, documents: bool = True) -> dict[str, Any]:
    decision = outcome.decision
    result: dict[str, Any] = {
        "pod": {"namespace": outcome.pod.namespace, "name": outcome.pod.name},
        "airflow": outcome.airflow,
        "request_uid": outcome.request_uid,
        "mode": outcome.mode,
        "verdict": verdict(outcome),
        "changed": outcome.changed,
        "ops": ops_json(outcome),
        "policies": list(decision.policies) if decision else [],
        "deny": messages_json(decision.deny) if decision else [],
        "warn": messages_json(decision.warn) if decision else [],
        "decision_id": decision.decision_id if decision else None,
        "error": error_json(outcome.error),
        "duration_ms": round(outcome.duration * 1000, 3),
    }
    if documents:
        result["before"] = outcome.before
        result["after"] = outcome.after
    return result


def pod_yaml(document: Any, *, sort_keys: bool = False) -> list[str]:
    return str(yaml.safe_dump(document, sort_keys=sort_keys, default_flow_style=False, width=10_000)).splitlines()


def yaml_diff(before: Any, after: Any, old: str, new: str, *, sort_keys: bool = False) -> list[str]:
    """A unified diff of two pods rendered as YAML (the way people read pods).

    ``sort_keys`` when the two documents come from different writers (a sample file and the encoder), so
    that only real differences show, not key order.
    """
    lines_before, lines_after = pod_yaml(before, sort_keys=sort_keys), pod_yaml(after, sort_keys=sort_keys)
    return list(difflib.unified_diff(lines_before, lines_after, old, new, lineterm="", n=3))


def order_like(value: Any, reference: Any) -> Any:
    """``value`` with its mappings' keys in ``reference``'s order (new keys after), so a rewritten golden
    file keeps its author's layout and its diff shows only what changed."""
    if isinstance(value, dict) and isinstance(reference, dict):
        keys = [k for k in reference if k in value] + [k for k in value if k not in reference]
        return {k: order_like(value[k], reference.get(k)) for k in keys}
    if isinstance(value, list) and isinstance(reference, list):
        return [order_like(v, reference[i] if i < len(reference) else None) for i, v in enumerate(value)]
    return value


def diff_text(lines: list[str]) -> Text:
    text = Text()
    for line in lines:
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        text.append(line + "\n", style=style)
    return text


def short(value: Any, limit: int = 80) -> str:
    rendered = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return rendered if len(rendered) <= limit else rendered[: limit - 1] + "…"


def message_text(kind: str, message: Message) -> Text:
    style = "red" if kind == "deny" else "yellow"
    text = Text(f"   {kind:<5}", style=f"bold {style}")
    text.append(f" [{message.policy or '-'}] ", style="bold")
    text.append(message.msg)
    return text


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
