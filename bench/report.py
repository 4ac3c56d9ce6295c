"""Merges bench.py's per-generation results and opa_eval.py's OPA evaluation figures (the library now
against the baseline library) into bench/results/<timestamp>.json and a Markdown table.

    python bench/report.py OUT_DIR EVAL_JSON RUN_JSON...

Exits non-zero when a figure is missing (short mode too): the smoke test checks that every row was
produced, never the values."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

COLUMNS = [
    ("models", "models", "{}"),
    ("policy_set", "policies", "{}"),
    ("containers", "containers", "{}"),
    ("floor_median_us", "floor median µs", "{:.0f}"),
    ("hook_median_us", "hook median µs", "{:.0f}"),
    ("ratio_median", "hook/floor", "**{:.2f}**"),
    ("floor_p99_us", "floor p99 µs", "{:.0f}"),
    ("hook_p99_us", "hook p99 µs", "{:.0f}"),
    ("hook_cpu_median_us", "hook CPU µs", "{:.0f}"),
    ("hook_cpu_over_floor_us", "CPU over floor µs", "{:.0f}"),
    ("opa_eval_median_us", "OPA eval µs", "{:.0f}"),
    ("opa_handler_median_us", "OPA handler µs", "{:.0f}"),
    ("hook_pods_per_s_1_thread", "pods/s 1 thread", "{:.0f}"),
    ("hook_pods_per_s_8_threads", "pods/s 8 threads", "{:.0f}"),
]


# The OPA evaluation rows every run must produce: (policy set, containers, with the baseline beside it).
EVAL_ROWS = [("library", n, True) for n in (1, 5, 50)] + [("library", 200, False)] + [
    ("library+200-generated", n, True) for n in (1, 5, 50)
]


def check_eval(evaluation: dict[str, Any]) -> None:
    """Every expected row is there with a positive median (and the baseline's, where compared)."""
    rows = {(row["policy_set"], row["containers"]): row for row in evaluation["rows"]}
    expected = EVAL_ROWS if evaluation["short"] else [*EVAL_ROWS, ("library", 1000, False)]
    for policy_set, containers, baseline in expected:
        row = rows.get((policy_set, containers))
        if row is None or not row["now_eval_median_us"] > 0:
            raise SystemExit(f"report: no OPA eval figure for {policy_set} at {containers} containers")
        if baseline and not row.get("baseline_eval_median_us", 0) > 0:
            raise SystemExit(f"report: no baseline figure for {policy_set} at {containers} containers")


def eval_table(evaluation: dict[str, Any]) -> list[str]:
    """OPA eval medians, the baseline library beside today's, and the linearity ratio."""
    rows = {(row["policy_set"], row["containers"]): row for row in evaluation["rows"]}
    lines = [f"OPA evaluation (`timer_rego_query_eval_ns`, median µs): the library now against the library at "
             f"{evaluation['baseline_commit']}, same pods, same OPA, requests alternating", "",
             "| policies | containers | ops / deny / warn | baseline µs | now µs | **baseline/now** |",
             "|---|---|---|---|---|---|"]
    for row in evaluation["rows"]:
        size = row["now_decision"]
        base = f"{row['baseline_eval_median_us']:.0f}" if "baseline_eval_median_us" in row else "-"
        speedup = f"**{row['speedup']:.2f}**" if "speedup" in row else "-"
        lines.append(f"| {row['policy_set']} | {row['containers']} | {size['patch']} / {size['deny']} / "
                     f"{size['warn']} | {base} | {row['now_eval_median_us']:.0f} | {speedup} |")
    if ("library", 50) in rows and ("library", 200) in rows:
        ratio = rows[("library", 200)]["now_eval_median_us"] / rows[("library", 50)]["now_eval_median_us"]
        lines += ["", f"Linearity: eval at 200 containers / eval at 50 = **{ratio:.2f}** (4 is linear)."]
    return lines


def main(out_dir: str, eval_path: str, *inputs: str) -> int:
    evaluation = json.loads(Path(eval_path).read_text())
    check_eval(evaluation)
    runs = [json.loads(Path(path).read_text()) for path in inputs]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    short = any(run["short"] for run in runs)
    lines = [f"# Benchmark {stamp}{' (short mode: smoke test, not figures)' if short else ''}", "",
             "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for run in runs:
        for row in run["rows"]:
            lines.append("| " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |")
    lines += ["", "| models | calls | RSS before MB | RSS after MB | growth MB |", "|---|---|---|---|---|"]
    for run in runs:
        m = run["memory"]
        lines.append(f"| {run['models']} | {m['calls']} | {m['rss_before_mb']:.1f} | {m['rss_after_mb']:.1f} | "
                     f"**{m['rss_growth_mb']:.2f}** |")
    lines += ["", *eval_table(evaluation)]
    table = "\n".join(lines) + "\n"
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stamp}{'-short' if short else ''}"
    document = {"timestamp": stamp, "runs": runs, "opa_eval": evaluation}
    (folder / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    (folder / f"{name}.md").write_text(table)
    print(table)
    print(f"wrote {folder / name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
