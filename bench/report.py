"""Merges bench.py's per-generation results, opa_eval.py's OPA evaluation figures (the library now
against the baseline library, and Gatekeeper's mutation engine on the same pods) and
admission_latency.py's pod create latencies through the API server (with and without the webhooks) into
bench/results/<timestamp>.json and a Markdown table.

    python bench/report.py OUT_DIR EVAL_JSON ADMISSION_JSON RUN_JSON...
    python bench/report.py --admission OUT_DIR ADMISSION_JSON    the admission row alone: <timestamp>-admission.*
    python bench/report.py --eval OUT_DIR EVAL_JSON              OPA's evaluation alone: <timestamp>-opa-eval.*

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
        if row is None or not row["now_eval_median_us"] > 0 or not row.get("compiled_eval_median_us", 0) > 0:
            raise SystemExit(f"report: no OPA eval figure (dynamic and compiled) for {policy_set} at {containers} "
                             "containers")
        if baseline and not row.get("baseline_eval_median_us", 0) > 0:
            raise SystemExit(f"report: no baseline figure for {policy_set} at {containers} containers")
    check_gatekeeper(evaluation)


# The sizes Gatekeeper's engine must be measured at, beside the library (bench/gatekeeper_eval.py).
GATEKEEPER_SIZES = (1, 5, 50, 200)


def check_gatekeeper(evaluation: dict[str, Any]) -> None:
    """Gatekeeper's figure at every size, beside the library's, and its pod the same as the library's."""
    rows = {row["containers"]: row for row in evaluation.get("gatekeeper", {}).get("rows", [])}
    for containers in GATEKEEPER_SIZES:
        row = rows.get(containers)
        if row is None or not row["gatekeeper_median_us"] > 0 or not row.get("now_eval_median_us", 0) > 0:
            raise SystemExit(f"report: no Gatekeeper figure beside the library's at {containers} containers")
        if not row["same_fields"]:
            raise SystemExit(f"report: Gatekeeper's pod differs from the library's at {containers} containers")


def gatekeeper_table(evaluation: dict[str, Any]) -> list[str]:
    """Gatekeeper's Mutate median per size beside OPA's eval of the library (dynamic and compiled)."""
    gatekeeper = evaluation["gatekeeper"]
    lines = [f"Gatekeeper {gatekeeper['gatekeeper_version']}'s native mutation engine (`pkg/mutation` System, "
             f"{gatekeeper['mutators']} Assign mutators doing what the library adds to this pod; one `Mutate` call, "
             f"{gatekeeper['copy']}; median µs) beside OPA's eval of the library now, same pods, same run; "
             "every mutated pod checked equal to the library's patched pod; a ratio above 1: the library is faster",
             "",
             "| containers | OPA eval now µs | OPA eval compiled µs | gatekeeper µs | gatekeeper p90 µs | "
             "gatekeeper/now | **gatekeeper/compiled** |",
             "|---|---|---|---|---|---|---|"]
    for row in gatekeeper["rows"]:
        lines.append(f"| {row['containers']} | {row['now_eval_median_us']:.0f} | "
                     f"{row['compiled_eval_median_us']:.0f} | {row['gatekeeper_median_us']:.0f} | "
                     f"{row['gatekeeper_p90_us']:.0f} | "
                     f"{row['gatekeeper_over_now']:.2f} | **{row['gatekeeper_over_compiled']:.2f}** |")
    return lines


def eval_table(evaluation: dict[str, Any]) -> list[str]:
    """OPA eval medians, the baseline library beside today's, and the linearity ratio."""
    rows = {(row["policy_set"], row["containers"]): row for row in evaluation["rows"]}
    lines = [f"OPA evaluation (`timer_rego_query_eval_ns`, median µs): the library at "
             f"{evaluation['baseline_commit']} (baseline), today's dynamic form (now) and today's library compiled "
             "for the shipped configuration (compiled, as `bundle build` ships it): same pods, same OPA, requests "
             "alternating, and the two forms' decisions checked byte-identical", "",
             "| policies | containers | ops / deny / warn | baseline µs | now µs | compiled µs | baseline/now | "
             "**baseline/compiled** | now/compiled |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in evaluation["rows"]:
        size = row["now_decision"]
        base = f"{row['baseline_eval_median_us']:.0f}" if "baseline_eval_median_us" in row else "-"
        speedup = f"{row['speedup']:.2f}" if "speedup" in row else "-"
        compiled = f"**{row['compiled_vs_baseline']:.2f}**" if "compiled_vs_baseline" in row else "-"
        lines.append(f"| {row['policy_set']} | {row['containers']} | {size['patch']} / {size['deny']} / "
                     f"{size['warn']} | {base} | {row['now_eval_median_us']:.0f} | "
                     f"{row['compiled_eval_median_us']:.0f} | {speedup} | {compiled} | "
                     f"{row['compiled_speedup']:.2f} |")
    if ("library", 50) in rows and ("library", 200) in rows:
        for form in ("now", "compiled"):
            ratio = rows[("library", 200)][f"{form}_eval_median_us"] / rows[("library", 50)][f"{form}_eval_median_us"]
            lines += ["", f"Linearity ({form}): eval at 200 containers / eval at 50 = **{ratio:.2f}** (4 is linear)."]
    return [*lines, "", *gatekeeper_table(evaluation)]


# The admission cells every run must produce: (containers, concurrent creators).
ADMISSION_CELLS = [(containers, creators) for containers in (1, 50) for creators in (1, 20)]


def check_admission(admission: dict[str, Any]) -> None:
    """Every cell with positive percentiles, every webhook pod checked mutated, OPA's figures per size."""
    rows = {(row["containers"], row["creators"]): row for row in admission["rows"]}
    for cell in ADMISSION_CELLS:
        row = rows.get(cell)
        figures = ("without_p50_ms", "without_p99_ms", "with_p50_ms", "with_p99_ms")
        if row is None or not all(row[key] > 0 for key in figures):
            raise SystemExit(f"report: no admission latency for {cell[0]} containers, {cell[1]} creators")
        if row["mutated_pods_checked"] < row["samples"]:
            raise SystemExit(f"report: admission cell {cell}: {row['mutated_pods_checked']} pods checked mutated")
    evals = {row["containers"]: row for row in admission["opa_eval"]}
    for containers in {cell[0] for cell in ADMISSION_CELLS}:
        if not evals.get(containers, {}).get("eval_p50_ms", 0) > 0:
            raise SystemExit(f"report: no OPA admission eval figure at {containers} containers")


def admission_table(admission: dict[str, Any]) -> list[str]:
    """p50 / p99 without and with the webhooks, the difference, and OPA's own time on the same pods."""
    evals = {row["containers"]: row for row in admission["opa_eval"]}
    load = admission["load_average_before"][0], admission["load_average_after"][0]
    lines = ["Pod create through the API server (kube-apiserver + etcd, one run, namespaces alternating; ms): "
             "without the webhooks, with them (mutate + validate, OPA over TLS), and the difference. "
             "OPA eval: `timer_rego_query_eval_ns` of the two replayed reviews (mutate + validate), median; "
             f"OPA per call: mean server time of the webhook calls in the cell; over 5 s: creates slower than the "
             "default timeoutSeconds (registered with 30 here), which the default would refuse. "
             f"Load average {load[0]:.1f} at the start, {load[1]:.1f} at the end ({admission['cpus']} cores).", "",
             "| containers | creators | samples | p50 without | p50 with | **added p50** | p99 without | p99 with "
             "| **added p99** | OPA eval p50 (mutate + validate) | added p50 / OPA eval | OPA per call | over 5 s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in admission["rows"]:
        evaluated = evals[row["containers"]]
        lines.append(
            f"| {row['containers']} | {row['creators']} | {row['samples']} | {row['without_p50_ms']:.1f} | "
            f"{row['with_p50_ms']:.1f} | **{row['added_p50_ms']:.1f}** | {row['without_p99_ms']:.1f} | "
            f"{row['with_p99_ms']:.1f} | **{row['added_p99_ms']:.1f}** | {evaluated['eval_p50_ms']:.1f} "
            f"({evaluated['mutate_eval_p50_ms']:.1f} + {evaluated['validate_eval_p50_ms']:.1f}) | "
            f"{row['added_p50_ms'] / evaluated['eval_p50_ms']:.2f} | {row['opa_server_mean_ms_per_call']:.1f} | "
            f"{row['with_over_default_timeout']} |")
    return lines


def _one_part(out_dir: str, path: str, part: str) -> int:
    """One part of the results alone (``admission`` or ``opa_eval``): <timestamp>-<part>.{json,md}."""
    title, check, table, key = {
        "admission": ("Admission latency", check_admission, admission_table, "admission"),
        "opa-eval": ("OPA evaluation", check_eval, eval_table, "opa_eval"),
    }[part]
    figures = json.loads(Path(path).read_text())
    check(figures)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    short = figures["short"]
    lines = [f"# {title} {stamp}{' (short mode: smoke test, not figures)' if short else ''}", "", *table(figures)]
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stamp}-{part}{'-short' if short else ''}"
    (folder / f"{name}.json").write_text(json.dumps({"timestamp": stamp, key: figures}, indent=2) + "\n")
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {folder / name}.json and .md")
    return 0


def main(out_dir: str, eval_path: str, *rest: str) -> int:
    if out_dir in ("--admission", "--eval"):
        return _one_part(eval_path, rest[0], "admission" if out_dir == "--admission" else "opa-eval")
    admission_path, *inputs = rest
    evaluation = json.loads(Path(eval_path).read_text())
    check_eval(evaluation)
    admission = json.loads(Path(admission_path).read_text())
    check_admission(admission)
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
    lines += ["", *eval_table(evaluation), "", *admission_table(admission)]
    table = "\n".join(lines) + "\n"
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stamp}{'-short' if short else ''}"
    document = {"timestamp": stamp, "runs": runs, "opa_eval": evaluation, "admission": admission}
    (folder / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    (folder / f"{name}.md").write_text(table)
    print(table)
    print(f"wrote {folder / name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
