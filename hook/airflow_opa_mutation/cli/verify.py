"""``verify [DIR]``: every policy's samples against their expected outcome, plus convergence; ``--update``.

A sample (``DIR/<policy>/samples/*``, YAML; the shipped ones end in ``.yaml.sample`` so that ``opa run
policies/`` does not load them as data) holds ``description``, ``config`` (a configuration delta: served
as ``data.airflow.pod.config`` by its own OPA, one per distinct delta), ``airflow`` (the task it stands
for), ``pod``, and ``expect``: ``pod`` (the pod after the whole library), ``deny`` and ``warn`` (lists of
``{policy, msg}``). :func:`check` is the one checker (tests/test_policy_samples.py runs it on the shipped
samples), through the hook's own ``MutationHook.evaluate``:

- the decision's deny and warn lists are exactly ``expect.deny`` and ``expect.warn``, denied or not;
- a denied sample's ``expect.pod`` (when given) is what the decision's patch would have made of the pod
  (the patch is not applied to a denied pod); any other sample becomes exactly ``expect.pod``;
- convergence: the mutated pod, evaluated again, yields no ops (a policy that keeps patching its own
  output would flap, and the hook evaluates each pod once);
- the configuration has no error: the decision carries none of the framework's configuration errors
  (``policies/lib/config.rego``; ``--update`` cannot write one into a golden file), and no exemption in
  it has expired (OPA's clock). Its advisories (exemptions wider than they look) and the exemptions
  ending within 14 days are shown as warnings, per sample.

``--update`` rewrites ``expect`` from what the library does now (golden files); it cannot fix a sample
that does not converge or fails to evaluate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml
from rich.table import Table
from rich.text import Text

from .. import _pod_codec
from .._opa_endpoint import opa_endpoint
from ..errors import Message, OpaMutationError, PodDenied
from ..hook import MutationHook, Outcome
from ._diff import diff_text, yaml_diff
from ._errors import EXIT_FAILED, EXIT_OK, CliError, handle_errors
from ._opa_admin import admin_client
from ._opa_provider import OpaProvider
from ._output import Output, emit_document, make_output, maybe_progress, output_options
from ._policy_config import config_errors, expiry_split, fetch_advisories, fetch_expiry, load_yaml


@dataclass
class Sample:
    path: Path
    policy: str
    document: dict[str, Any]
    header: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict[str, Any]:
        config = self.document.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def expect(self) -> dict[str, Any]:
        expect = self.document.get("expect")
        return expect if isinstance(expect, dict) else {}


@dataclass
class SampleResult:
    sample: Sample
    status: str = "pass"  # pass, fail, updated
    problems: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    converged: bool | None = None
    outcome: Outcome | None = None
    warnings: list[str] = field(default_factory=list)
    config_error: bool = False

    def fail(self, problem: str) -> None:
        self.status = "fail"
        self.problems.append(problem)


def discover(root: Path, only: tuple[str, ...] = ()) -> list[Sample]:
    """The samples of every policy folder under ``root`` (``root/<policy>/samples/*``), sorted."""
    samples = []
    for path in sorted(root.glob("*/samples/*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        policy = path.parent.parent.name
        if only and policy not in only:
            continue
        samples.append(load_sample(path, policy))
    return samples


def load_sample(path: Path, policy: str) -> Sample:
    text = path.read_text()
    try:
        document = load_yaml(text)
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: not YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("pod"), dict):
        raise CliError(f"{path}: a sample is a mapping with at least pod: (and expect:)")
    header = "".join(re.match(r"(?:#[^\n]*\n)*", text).group(0))  # type: ignore[union-attr]
    return Sample(path, policy, document, header)


def _pairs(messages: Any) -> list[tuple[str, str]]:
    pairs = []
    for entry in messages or []:
        if isinstance(entry, str):
            pairs.append(("", entry))
        elif isinstance(entry, dict):
            pairs.append((str(entry.get("policy") or ""), str(entry.get("msg"))))
    return sorted(pairs)


def _got(messages: tuple[Message, ...]) -> list[tuple[str, str]]:
    return sorted((m.policy or "", m.msg) for m in messages)


def _as_entries(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages as a sample writes them: in decision order (compared in any order)."""
    return [{"policy": m.policy, "msg": m.msg} for m in messages]


def would_be(hook: MutationHook, outcome: Outcome) -> dict[str, Any] | None:
    """The pod the decision's patch makes (for a denied pod too, where the hook does not apply it)."""
    from .. import _patch_engine

    if outcome.after is not None:
        return outcome.after
    if outcome.before is None or outcome.decision is None:
        return None
    if not outcome.decision.patch:
        return outcome.before
    ops = outcome.decision.patch
    try:
        after, roots = _patch_engine.patch(
            outcome.before,
            ops,
            protected_labels=hook.settings.all_protected_labels,
            max_ops=hook.settings.max_patch_ops,
        )
        _patch_engine.to_pod(after, ops, roots)  # a patched pod that is not a valid V1Pod: None
    except OpaMutationError:
        return None
    return after


def check(sample: Sample, hook: MutationHook) -> SampleResult:
    result = SampleResult(sample)
    pod = _pod_codec.decode(sample.document["pod"])
    outcome = result.outcome = hook.evaluate(pod)
    expect = sample.expect
    error = outcome.error
    if error is not None and not isinstance(error, PodDenied):
        result.fail(f"evaluation failed: {type(error).__name__}: {error}")
        return result
    assert outcome.decision is not None
    for problem in config_errors(outcome.decision):
        result.config_error = True
        result.fail(problem)
    want_deny = _pairs(expect.get("deny"))
    got_deny = _got(outcome.decision.deny)
    if got_deny != want_deny:
        result.fail(f"deny: expected {want_deny or 'none'}, got {got_deny or 'none'}")
    got_warn = _got(outcome.decision.warn)
    want_warn = _pairs(expect.get("warn"))
    if got_warn != want_warn:
        result.fail(f"warn: expected {want_warn or 'none'}, got {got_warn or 'none'}")
    after = would_be(hook, outcome)
    want_pod = expect.get("pod", sample.document["pod"])
    if after is None:
        result.fail("the decision's patch does not apply to the pod")
    elif after != want_pod and (not got_deny or "pod" in expect):
        result.fail("the pod differs from expect.pod" + (" (the patch is not applied: denied)" if got_deny else ""))
        result.diff = yaml_diff(want_pod, after, "expect.pod", "got", sort_keys=True)
    if not got_deny and outcome.after is not None:
        again = hook.evaluate(_pod_codec.decode(outcome.after))
        if again.error is not None:
            result.converged = False
            result.fail(f"convergence: evaluating the mutated pod failed: {again.error}")
        elif again.decision is not None and again.decision.patch:
            result.converged = False
            paths = ", ".join(f"{op.op.get('op')} {op.path} [{op.policy or '-'}]" for op in again.decision.patch)
            result.fail(f"convergence: the mutated pod still gets {len(again.decision.patch)} op(s): {paths}")
        else:
            result.converged = True
    return result


def order_like(value: Any, reference: Any) -> Any:
    """``value`` with its mappings' keys in ``reference``'s order (new keys after), so a rewritten golden
    file keeps its author's layout and its diff shows only what changed."""
    if isinstance(value, dict) and isinstance(reference, dict):
        keys = [k for k in reference if k in value] + [k for k in value if k not in reference]
        return {k: order_like(value[k], reference.get(k)) for k in keys}
    if isinstance(value, list) and isinstance(reference, list):
        return [order_like(v, reference[i] if i < len(reference) else None) for i, v in enumerate(value)]
    return value


def update(result: SampleResult, hook: MutationHook) -> None:
    """Rewrite the sample's ``expect`` from what the library does now (keeps its other keys and header)."""
    outcome = result.outcome
    if outcome is None or outcome.decision is None or result.converged is False or result.config_error:
        return
    if outcome.error is not None and not isinstance(outcome.error, PodDenied):
        return
    after = would_be(hook, outcome)
    if after is None:
        return
    sample = result.sample
    reference = sample.expect.get("pod", sample.document["pod"])
    expect: dict[str, Any] = {
        "pod": order_like(after, reference),
        "deny": _as_entries(outcome.decision.deny),
        "warn": _as_entries(outcome.decision.warn),
    }
    if sample.expect == expect:
        return
    document = dict(sample.document)
    document["expect"] = expect
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=10_000, allow_unicode=True)
    sample.path.write_text(sample.header + body)
    result.status = "updated"
    result.problems = []
    result.diff = []


@click.command()
@click.argument("directory", default="policies", type=click.Path(file_okay=False, path_type=Path))
@click.option("--policy", "only", multiple=True, help="Only this policy's samples (repeatable).")
@click.option(
    "--update", "update_goldens", is_flag=True, help="Rewrite each sample's expect: from what the library does now."
)
@output_options
@handle_errors("verify")
def verify(directory: Path, only: tuple[str, ...], update_goldens: bool, output_format: str, color: str) -> None:
    """Run every policy's samples/ against its expected result and check convergence.

    DIR (default ./policies) is the policy library: the pinned OPA serves it (plus each sample's
    config: delta) for the duration of the command. --update rewrites the expected results (golden
    files); review the diff before committing.

    Exit status: 0 every sample matches and converges, 1 a sample fails, 2 usage or runtime error.
    """
    output = make_output(output_format, color)
    if not directory.is_dir():
        raise CliError(f"{directory}: no such folder", fix="give the policy library folder (default ./policies)")
    samples = discover(directory, only)
    if not samples:
        raise CliError(f"no samples under {directory}/*/samples/", fix="add samples, or give the library folder")
    results = _run(directory, samples, update_goldens, output)
    failed = [r for r in results if r.status == "fail"]
    code = EXIT_FAILED if failed else EXIT_OK
    if output.json:
        emit_document(
            "verify",
            code,
            {
                "samples": [
                    {
                        "path": str(r.sample.path),
                        "policy": r.sample.policy,
                        "name": r.sample.name,
                        "description": r.sample.document.get("description"),
                        "status": r.status,
                        "converged": r.converged,
                        "problems": r.problems,
                        "diff": r.diff,
                        "warnings": r.warnings,
                    }
                    for r in results
                ],
                "summary": {
                    status: sum(1 for r in results if r.status == status) for status in ("pass", "fail", "updated")
                },
            },
        )
        raise click.exceptions.Exit(code)
    table = Table(title=f"samples under {directory}", title_justify="left", expand=False)
    table.add_column("policy")
    table.add_column("sample")
    table.add_column("result")
    table.add_column("converges")
    styles = {"pass": "green", "fail": "bold red", "updated": "yellow"}
    for r in results:
        converges = {True: "yes", False: "NO", None: "-"}[r.converged]
        table.add_row(r.sample.policy, r.sample.name, Text(r.status, style=styles[r.status]), converges)
    output.console.print(table)
    for r in failed:
        output.console.print()
        output.console.print(Text(f"FAIL {r.sample.path}", style="bold red"))
        description = r.sample.document.get("description")
        if description:
            output.console.print(Text(f"  {description}", style="dim"))
        for problem in r.problems:
            output.console.print(f"  - {problem}")
        if r.diff:
            output.console.print(diff_text(r.diff), end="")
    _print_warnings(output, results)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("pass", "fail", "updated")}
    summary = f"{len(results)} sample(s): {counts['pass']} passed, {counts['fail']} failed"
    if update_goldens:
        summary += f", {counts['updated']} updated"
    output.console.print()
    output.console.print(Text(summary, style="bold red" if failed else "bold green"))
    raise click.exceptions.Exit(code)


def _run(directory: Path, samples: list[Sample], update_goldens: bool, output: Output) -> list[SampleResult]:
    """Check (and with ``update_goldens`` rewrite) each sample against the library in ``directory``."""
    results: list[SampleResult] = []
    advisories: dict[int, tuple[list[str], list[str]]] = {}  # by hook: one local OPA per configuration
    with (
        OpaProvider(policies=directory, audit_annotation=False, warn=output.err.print) as provider,
        maybe_progress(output, "verifying samples", len(samples)) as advance,
    ):
        for sample in samples:
            hook = provider.hook(sample.config)
            try:
                result = check(sample, hook)
            except _pod_codec.DecodeError as exc:
                result = SampleResult(sample)
                result.fail(f"the sample's pod is not a valid pod: {exc}")
            if update_goldens and result.status == "fail":
                update(result, hook)
            if id(hook) not in advisories:
                advisories[id(hook)] = _advisories(hook)
            expired, result.warnings = advisories[id(hook)]
            for problem in expired:
                result.config_error = True
                result.fail(problem)
            results.append(result)
            advance()
    return results


def _advisories(hook: MutationHook) -> tuple[list[str], list[str]]:
    """For the configuration this hook's OPA serves: the expired exemptions (failures), then the library's
    advisories and the exemptions ending soon (warnings)."""
    with admin_client(opa_endpoint(hook.settings), timeout=max(hook.settings.timeout, 5.0)) as admin:
        expired, expiring = expiry_split(fetch_expiry(admin) or [])
        return expired, (fetch_advisories(admin) or []) + expiring


def _print_warnings(output: Output, results: list[SampleResult]) -> None:
    """Each advisory once, with the samples whose configuration has it."""
    where: dict[str, list[str]] = {}
    for r in results:
        for warning in r.warnings:
            where.setdefault(warning, []).append(r.sample.name)
    for warning, names in where.items():
        output.console.print()
        line = Text("warning: ", style="bold yellow")
        line.append(warning)
        output.console.print(line)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        output.console.print(Text(f"  (the configuration of {shown})", style="dim"))


__all__ = ["Sample", "SampleResult", "check", "discover", "verify"]
