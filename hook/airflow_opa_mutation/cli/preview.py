"""``preview POD...``: what the hook would do to these pods, through the hook's own code path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from ..decision import Exemption
from ..errors import Message
from ..hook import Outcome
from ._diff import diff_text, yaml_diff
from ._errors import EXIT_FAILED, EXIT_OK, handle_errors
from ._opa_provider import OpaProvider, load_config_file, opa_options
from ._outcomes import failing, outcome_json, verdict
from ._output import Output, emit_document, make_output, output_options
from ._pods import PodDocument, decode_pod, load_pod_documents

_VERDICT_STYLE = {"mutated": "bold green", "unchanged": "bold", "denied": "bold red", "failed": "bold red"}


@click.command()
@click.argument("pods", nargs=-1, required=True, metavar="POD_FILE...")
@opa_options
@click.option(
    "--mode",
    type=click.Choice(["enforce", "dry-run"]),
    help="request.mode sent to OPA (default: [opa_mutation] mode).",
)
@output_options
@handle_errors("preview")
def preview(  # noqa: PLR0917 - one parameter per click option
    pods: tuple[str, ...],
    url: str | None,
    policies: Path | None,
    config_file: Path | None,
    mode: str | None,
    output_format: str,
    color: str,
) -> None:
    """Show what the hook would do to pods: the diff, each op and its policy, deny and warn messages.

    POD_FILE is a YAML or JSON file, or - for stdin; it may hold several documents, each a pod or a
    policy sample (a mapping with a pod: key, whose config: is used with --policies unless --config
    is given). Every pod goes through MutationHook.evaluate, the hook's own code path.

    Exit status: 0 every pod allowed, 1 a pod would be denied or its evaluation failed, 2 usage or
    runtime error.
    """
    output = make_output(output_format, color)
    documents: list[PodDocument] = [doc for spec in pods for doc in load_pod_documents(spec)]
    decoded = [(document, decode_pod(document)) for document in documents]
    config = load_config_file(config_file) if config_file is not None else None
    results: list[tuple[PodDocument, Outcome]] = []
    notes: list[str] = []
    with OpaProvider(url=url, policies=policies, config=config, warn=output.err.print) as provider:
        for document, pod in decoded:
            if document.config and not provider.local:
                notes.append(f"{document.source}: the sample's config: is not applied (an OPA at a URL serves its own)")
            hook = provider.hook(document.config)
            results.append((document, hook.evaluate(pod, mode=mode)))
    code = EXIT_FAILED if any(failing(outcome) for _, outcome in results) else EXIT_OK
    if output.json:
        pods_json = [
            {"source": document.source, **outcome_json(outcome), "diff": _diff_lines(outcome)}
            for document, outcome in results
        ]
        emit_document("preview", code, {"notes": notes, "pods": pods_json})
    else:
        for note in notes:
            output.err.print(f"note: {note}", style="yellow")
        for index, (document, outcome) in enumerate(results):
            if index:
                output.console.print()
            render(output, document, outcome)
        _summary(output, [outcome for _, outcome in results])
    raise click.exceptions.Exit(code)


def _diff_lines(outcome: Outcome) -> list[str]:
    if outcome.before is None or outcome.after is None or not outcome.changed:
        return []
    # keys sorted, like Outcome.diff(): the same text whichever kubernetes client encoded the pod
    return yaml_diff(outcome.before, outcome.after, "pod (from Airflow)", "pod (after policy)", sort_keys=True)


def render(output: Output, document: PodDocument, outcome: Outcome) -> None:
    console = output.console
    result = verdict(outcome)
    header = Text("== ", style="bold")
    header.append(f"{outcome.pod}", style="bold")
    header.append(f"  ({document.source})", style="dim")
    console.print(header)
    if document.description:
        console.print(Text(f"   {document.description}", style="dim"))
    decision = outcome.decision
    line = Text("   decision: ")
    line.append(result.upper(), style=_VERDICT_STYLE[result])
    if decision is not None:
        line.append(f"  ops={len(decision.patch)} policies={','.join(decision.policies) or '-'}")
    console.print(line)
    if outcome.error is not None and result == "failed":
        console.print(Text(f"   error: {type(outcome.error).__name__}: {outcome.error}", style="red"))
    if decision is not None:
        for message in decision.deny:
            console.print(message_text("deny", message))
        for message in decision.warn:
            console.print(message_text("warn", message))
        for exemption in decision.exemptions:
            console.print(exemption_text(exemption))
        if decision.patch:
            applied = " (not applied)" if result in ("denied", "failed") else ""
            console.print(Text(f"   ops{applied}:", style="bold"))
            for op in decision.patch:
                text = Text(f"   #{op.index:<3} {op.op.get('op', '?'):<8} {op.path or '-'}")
                text.append(f"  [{op.policy or '-'}]", style="magenta")
                if "from" in op.op:
                    text.append(f"  from {op.op['from']}")
                if "value" in op.op:
                    text.append(f"  = {short(op.op['value'])}", style="dim")
                console.print(text)
    lines = _diff_lines(outcome)
    if lines:
        console.print(diff_text(lines), end="")


def short(value: Any, limit: int = 80) -> str:
    rendered = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return rendered if len(rendered) <= limit else rendered[: limit - 1] + "…"


def message_text(kind: str, message: Message) -> Text:
    style = "red" if kind == "deny" else "yellow"
    text = Text(f"   {kind:<5}", style=f"bold {style}")
    text.append(f" [{message.policy or '-'}] ", style="bold")
    text.append(message.msg)
    return text


def exemption_text(exemption: Exemption) -> Text:
    """An exemption that applied: scope, where it is configured, its owner and end (policies/README.md)."""
    text = Text("   exempt", style="bold cyan")
    text.append(f" [{exemption.policy or '*'}] ", style="bold")
    text.append(exemption.key)
    owner = [part for part in (exemption.ticket, exemption.expires and f"expires {exemption.expires}") if part]
    if owner:
        text.append(f"  ({', '.join(owner)})", style="dim")
    if exemption.reason:
        text.append(f": {exemption.reason}", style="dim")
    return text


def _summary(output: Output, outcomes: list[Outcome]) -> None:
    counts: dict[str, Any] = {}
    for outcome in outcomes:
        counts[verdict(outcome)] = counts.get(verdict(outcome), 0) + 1
    parts = [f"{counts[key]} {key}" for key in ("mutated", "unchanged", "denied", "failed") if key in counts]
    output.console.print()
    output.console.print(Text(f"{len(outcomes)} pod(s): " + ", ".join(parts), style="bold"))
