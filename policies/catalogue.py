#!/usr/bin/env python3
"""Generate the policy catalogue in policies/README.md from each policy's README front matter.

Every policy folder (``policies/<name>/`` with a ``policy.rego``) has a ``README.md`` that starts with

    ---
    kind: mutate | validate
    default: on | off
    summary: One line.
    ---

This script renders those into the table between the ``<!-- catalogue:start -->`` and
``<!-- catalogue:end -->`` markers of ``policies/README.md``. It also checks that the front matter
agrees with the Rego (``default`` with ``"enabled"`` in ``defaults``, ``kind: mutate`` with a
``patch`` rule) and that each folder holds what policies/README.md promises: ``policy.rego``,
``policy_test.rego``, ``README.md`` and at least two ``samples/*.yaml.sample``.

    python3 policies/catalogue.py           # rewrite policies/README.md
    python3 policies/catalogue.py --check   # exit 1 when the README is stale or a folder is incomplete

Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
README = ROOT / "README.md"
START = "<!-- catalogue:start -->"
END = "<!-- catalogue:end -->"
KINDS = ("mutate", "validate")
DEFAULTS = ("on", "off")
SAMPLE_SUFFIX = ".yaml.sample"
MIN_SAMPLES = 2
RESERVED = ("framework", "lib")

_ENABLED = re.compile(r'defaults\s*:=\s*\{\s*"enabled"\s*:\s*(true|false)', re.MULTILINE)
_PATCH_RULE = re.compile(r"^patch\s+(contains|:=|=|\[)", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str
    default: str
    summary: str


def front_matter(text: str) -> dict[str, str]:
    """The ``key: value`` lines between the leading ``---`` lines of a README."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError("README.md does not start with a '---' front matter block")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            return fields
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"front matter line without ':': {line!r}")
        fields[key.strip()] = value.strip()
    raise ValueError("front matter block is not closed with '---'")


def policy_folders(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "policy.rego").is_file())


def load(folder: Path) -> tuple[Policy | None, list[str]]:
    """The policy described in ``folder`` and the problems found there."""
    name = folder.name
    problems: list[str] = []
    if name in RESERVED:
        problems.append(f"{name}: the name is reserved (the framework reports its own findings under it)")
    for required in ("policy_test.rego", "README.md"):
        if not (folder / required).is_file():
            problems.append(f"{name}: missing {required}")
    samples = sorted((folder / "samples").glob(f"*{SAMPLE_SUFFIX}")) if (folder / "samples").is_dir() else []
    if len(samples) < MIN_SAMPLES:
        problems.append(f"{name}: needs at least {MIN_SAMPLES} samples/*{SAMPLE_SUFFIX}, has {len(samples)}")

    rego = (folder / "policy.rego").read_text(encoding="utf-8")
    package = _PACKAGE.search(rego)
    if not package or package.group(1) != f"airflow.pod.policies.{name}":
        problems.append(f"{name}: policy.rego must declare package airflow.pod.policies.{name}")
    enabled = _ENABLED.search(rego)
    if not enabled:
        problems.append(f'{name}: policy.rego has no `defaults := {{"enabled": ...}}`')

    if not (folder / "README.md").is_file():
        return None, problems
    try:
        fields = front_matter((folder / "README.md").read_text(encoding="utf-8"))
    except ValueError as error:
        return None, [*problems, f"{name}: {error}"]
    kind, default, summary = fields.get("kind", ""), fields.get("default", ""), fields.get("summary", "")
    if kind not in KINDS:
        problems.append(f"{name}: front matter kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if default not in DEFAULTS:
        problems.append(f"{name}: front matter default must be one of {', '.join(DEFAULTS)}, got {default!r}")
    if not summary:
        problems.append(f"{name}: front matter has no summary")
    if "|" in summary:
        problems.append(f"{name}: the summary must not contain '|'")
    if enabled and default in DEFAULTS and (enabled.group(1) == "true") != (default == "on"):
        problems.append(f"{name}: README says default {default}, policy.rego says enabled {enabled.group(1)}")
    if kind in KINDS and bool(_PATCH_RULE.search(rego)) != (kind == "mutate"):
        problems.append(
            f"{name}: README says kind {kind}, but policy.rego "
            + ("defines" if kind == "validate" else "does not define")
            + " a patch rule"
        )
    return Policy(name, kind, default, summary), problems


def render(policies: list[Policy]) -> str:
    order = sorted(policies, key=lambda p: (KINDS.index(p.kind) if p.kind in KINDS else 9, p.name))
    rows = ["| policy | kind | on by default | summary |", "| --- | --- | --- | --- |"]
    rows += [
        f"| [`{p.name}`]({p.name}/) | {p.kind} | {'yes' if p.default == 'on' else 'no'} | {p.summary} |" for p in order
    ]
    return "\n".join(rows)


def with_table(readme: str, table: str) -> str:
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{README.name} lacks the {START} ... {END} markers")
    return readme[: start + len(START)] + "\n" + table + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 when README.md is stale or a policy folder is incomplete",
    )
    args = parser.parse_args(argv)

    policies: list[Policy] = []
    problems: list[str] = []
    for folder in policy_folders():
        policy, found = load(folder)
        problems += found
        if policy:
            policies.append(policy)

    current = README.read_text(encoding="utf-8")
    try:
        wanted = with_table(current, render(policies))
    except ValueError as error:
        problems.append(str(error))
        wanted = current

    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check:
        if wanted != current:
            print(f"{README.relative_to(ROOT.parent)} is stale: run python3 policies/catalogue.py", file=sys.stderr)
            return 1
        return 1 if problems else 0
    if wanted != current:
        README.write_text(wanted, encoding="utf-8")
        print(f"wrote {README.relative_to(ROOT.parent)} ({len(policies)} policies)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
