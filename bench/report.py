"""Merges bench.py's per-generation results into bench/results/<timestamp>.json and a Markdown table."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

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


def main(out_dir: str, *inputs: str) -> int:
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
    table = "\n".join(lines) + "\n"
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stamp}{'-short' if short else ''}"
    (folder / f"{name}.json").write_text(json.dumps({"timestamp": stamp, "runs": runs}, indent=2) + "\n")
    (folder / f"{name}.md").write_text(table)
    print(table)
    print(f"wrote {folder / name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
