"""Pods as people read them: YAML, and the unified diff of two pods, coloured for the terminal."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from rich.text import Text


def pod_yaml(document: Any, *, sort_keys: bool = False) -> list[str]:
    return str(yaml.safe_dump(document, sort_keys=sort_keys, default_flow_style=False, width=10_000)).splitlines()


def yaml_diff(before: Any, after: Any, old: str, new: str, *, sort_keys: bool = False) -> list[str]:
    """A unified diff of two pods rendered as YAML (the way people read pods).

    ``sort_keys`` when the two documents come from different writers (a sample file and the encoder), so
    that only real differences show, not key order.
    """
    lines_before, lines_after = pod_yaml(before, sort_keys=sort_keys), pod_yaml(after, sort_keys=sort_keys)
    return list(difflib.unified_diff(lines_before, lines_after, old, new, lineterm="", n=3))


_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


def diff_text(lines: list[str]) -> Text:
    from rich.text import Text

    text = Text()
    for line in lines:
        style = next((style for prefix, style in _STYLES if line.startswith(prefix)), "")
        text.append(line + "\n", style=style)
    return text
