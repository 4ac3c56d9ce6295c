"""Measured figures (wall times, counts) collected while the reliability tests run.

Each test records what it measured; the suite prints them in a table at the end of the run
(``pytest_terminal_summary`` in this folder's conftest) and, when ``AOM_FIGURES_OUT`` names a file,
appends them there as JSON lines (how FIGURES.md was produced).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    test: str
    what: str
    value: float
    unit: str
    bound: str = ""


FIGURES: list[Figure] = []


def record(test: str, what: str, value: float, unit: str = "s", bound: str = "") -> None:
    figure = Figure(test, what, round(value, 4), unit, bound)
    FIGURES.append(figure)
    out = os.environ.get("AOM_FIGURES_OUT")
    if out:
        import kubernetes

        row = {**asdict(figure), "kubernetes": kubernetes.__version__, "python": sys.version.split()[0]}
        with open(out, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def render(path: str) -> str:
    """FIGURES.md's table from the JSON lines ``AOM_FIGURES_OUT`` collected (one column per venv)."""
    rows: dict[tuple[str, str], dict[str, tuple[float, str, str]]] = {}
    columns: list[str] = []
    with open(path) as handle:
        for line in handle:
            row = json.loads(line)
            column = f"kubernetes {row['kubernetes']}"
            if column not in columns:
                columns.append(column)
            rows.setdefault((row["test"], row["what"]), {})[column] = (row["value"], row["unit"], row["bound"])
    out = ["| test | measured | " + " | ".join(columns) + " | bound |", "|---|---|" + "---:|" * len(columns) + "---|"]
    for (test, what), cells in rows.items():
        values = []
        bound = ""
        for column in columns:
            if column in cells:
                value, unit, bound = cells[column][0], cells[column][1], cells[column][2] or bound
                values.append(f"{value:g} {unit}")
            else:
                values.append("-")
        out.append(f"| {test} | {what} | " + " | ".join(values) + f" | {bound} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(sys.argv[1]), end="")
