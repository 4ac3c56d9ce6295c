"""Gatekeeper's native mutation engine on the benchmark's pods, beside OPA's evaluation of the library.

bench/gatekeeper (a Go program built by bench/gatekeeper/build from the Go module proxy, Gatekeeper's
version pinned by its go.mod) times ``System.Mutate`` of Gatekeeper's ``pkg/mutation`` with seven Assign
mutators equivalent to what the default library adds to the worker pod. This module writes the same pods
bench/opa_eval.py sends (the input's ``pod``), runs the program, and checks the same work was measured:
the pod Gatekeeper mutated must equal the pod with the library's decision patch applied (the hook's own
patch engine); any difference is listed and fails the run.

    python bench/gatekeeper_eval.py --out gatekeeper.json [--short] [--sizes 1,5,50]

Standalone it starts its own OPA for the library's decisions; bench/opa_eval.py calls :func:`run` with the
decisions of its own OPA, so the figures sit beside OPA's in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_opa_mutation import _json
from airflow_opa_mutation._patch_engine import patch
from airflow_opa_mutation.cli._local_opa import LocalOpa
from airflow_opa_mutation.decision import PatchOp
from bench import REPO

BUILD = REPO / "bench" / "gatekeeper" / "build"


def iterations(containers: int, short: bool) -> tuple[int, int]:
    """(timed calls, warm-up calls) for one size: many in a full run, a handful in short mode (CI)."""
    if containers < 50:
        return (20, 5) if short else (2000, 200)
    if containers == 50:
        return (3, 1) if short else (300, 30)
    return (3, 1) if short else (60, 6)


def build() -> tuple[Path, float]:
    """The benchmark's binary (built on first use, then reused from the per-user cache) and the seconds
    the build step took (a cache hit: a fraction of a second)."""
    began = time.perf_counter()
    done = subprocess.run([str(BUILD)], stdout=subprocess.PIPE, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1]), time.perf_counter() - began


def pod_of(body: bytes) -> dict[str, Any]:
    """The pod of an OPA request body (bench/opa_eval.py's ``request_body``)."""
    pod = json.loads(body)["input"]["pod"]
    assert isinstance(pod, dict)
    return pod


def patched(pod: dict[str, Any], decision_patch: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod with the library's patch applied by the hook's own patch engine (plain JSON again)."""
    ops = [PatchOp(index=i, op={k: v for k, v in op.items() if k != "policy"}, policy=op.get("policy"))
           for i, op in enumerate(decision_patch)]
    result, _ = patch(pod, ops, protected_labels=(), max_ops=1_000_000)
    loaded = json.loads(_json.dumps(result))
    assert isinstance(loaded, dict)
    return loaded


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where two JSON documents differ, as JSON pointers with both values (empty when equal)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found: list[str] = []
        for key in sorted(expected.keys() | actual.keys()):
            where = f"{path}/{key}"
            if key not in actual:
                found.append(f"{where}: only in the library's result ({json.dumps(expected[key])})")
            elif key not in expected:
                found.append(f"{where}: only in Gatekeeper's result ({json.dumps(actual[key])})")
            else:
                found += differences(expected[key], actual[key], where)
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        pairs = enumerate(zip(expected, actual, strict=True))
        return [found for i, (e, a) in pairs for found in differences(e, a, f"{path}/{i}")]
    if expected != actual or type(expected) is not type(actual):
        return [f"{path or '/'}: library {json.dumps(expected)}, Gatekeeper {json.dumps(actual)}"]
    return []


def run(bodies: Mapping[int, bytes], decisions: Mapping[int, Mapping[str, Any]], short: bool) -> dict[str, Any]:
    """Gatekeeper's Mutate median/p90 per size and the same-work check against the library's decisions."""
    binary, build_seconds = build()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for containers, body in bodies.items():
            (folder / f"pod-{containers}.json").write_text(json.dumps(pod_of(body)))
        version = ""
        for containers in bodies:
            count, warmup = iterations(containers, short)
            done = subprocess.run([str(binary), "--pods", str(folder), "--sizes", str(containers), "--iterations",
                                   str(count), "--warmup", str(warmup), "--mutated", str(folder)],
                                  stdout=subprocess.PIPE, text=True, check=True)
            result = json.loads(done.stdout)
            version = result["gatekeeper_version"]
            (figures,) = result["rows"]
            mutated = json.loads((folder / f"mutated-{containers}.json").read_text())
            expected = patched(pod_of(bodies[containers]), list(decisions[containers].get("patch", [])))
            diff = differences(expected, mutated)
            rows.append({"containers": containers, "gatekeeper_median_us": figures["median_ns"] / 1e3,
                         "gatekeeper_p90_us": figures["p90_ns"] / 1e3, "calls": figures["iterations"],
                         "warmup": figures["warmup"], "same_fields": not diff, "differences": diff})
            row = rows[-1]
            print(f"Gatekeeper {version} Mutate {containers:>4} containers: median {row['gatekeeper_median_us']:8.0f}"
                  f" us, p90 {row['gatekeeper_p90_us']:8.0f} us, same fields as the library: {not diff}", flush=True)
    return {"gatekeeper_version": version, "mutators": result["mutators"], "copy": result["copy"],
            "go_version": result["go_version"], "build_seconds": build_seconds, "rows": rows}


def check(result: Mapping[str, Any], sizes: Iterable[int]) -> None:
    """Every size measured, positive, and the same work as the library's; raises SystemExit otherwise."""
    rows = {row["containers"]: row for row in result["rows"]}
    for containers in sizes:
        row = rows.get(containers)
        if row is None or not row["gatekeeper_median_us"] > 0:
            raise SystemExit(f"gatekeeper_eval: no Gatekeeper figure at {containers} containers")
        if not row["same_fields"]:
            raise SystemExit(f"gatekeeper_eval: at {containers} containers Gatekeeper's pod differs from the "
                             "library's: " + "; ".join(row["differences"]))


def main() -> int:
    from opa_eval import decision, request_body  # run as a script: bench/ is on sys.path (no import cycle)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--sizes", default="1,5,50", help="container counts, comma-separated")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    bodies = {containers: request_body(containers) for containers in sizes}
    with LocalOpa([REPO / "policies"]) as opa:
        decisions = {containers: decision(opa, body) for containers, body in bodies.items()}
    result = run(bodies, decisions, args.short)
    result["short"] = args.short
    args.out.write_text(json.dumps(result, indent=2))
    check(result, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
