"""OPA's own evaluation time of the library, now against the baseline, side by side in one run.

The baseline is the library as it was at commit ``BASELINE`` (685cecc, before the Rego cost work),
extracted from git into a scratch folder: both libraries run in their own OPA (the same binary), on the
same pods, and their requests alternate, so drift on a busy machine hits both alike. The figure is OPA's
``timer_rego_query_eval_ns`` (``?metrics=true``): evaluation only, no HTTP, no JSON, no Python.

    python bench/opa_eval.py --out eval.json [--short]

Rows: library, and library + the benchmark's 200 generated policies, at 1, 5 and 50 containers: the
baseline, today's library in its dynamic form ("now") and compiled for the shipped configuration
("compiled", ``airflow-opa-mutation compile``: what ``bundle build`` ships); then the library alone at 200
and 1,000 containers (now and compiled: the shape, and the linearity check 200 <= 4.6x 50). Short mode
runs a few calls per row and skips the 1,000-container row. Then Gatekeeper's native mutation engine on
the same pods at 1, 5, 50 and 200 containers (bench/gatekeeper_eval.py), beside the library's figures
(dynamic and compiled), checked to produce the library's pod.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import urllib3
from gatekeeper_eval import check as check_gatekeeper
from gatekeeper_eval import run as run_gatekeeper

from airflow_opa_mutation import _json, pod_to_json
from airflow_opa_mutation._airflow_context import airflow_context
from airflow_opa_mutation.cli._compiler import compile_library
from airflow_opa_mutation.cli._local_opa import LocalOpa, opa_binary

# Run as a script, so bench/ is on sys.path: the same pods and generated policies as bench.py.
from bench import DECISION, REPO, generated_policies, worker_pod

BASELINE = "685cecc"


def baseline_library(folder: Path) -> Path:
    """``policies/`` as it was at ``BASELINE``, extracted with git into ``folder``. Fails loudly without
    the history (a shallow clone: ``git fetch --unshallow``), never falls back to something else."""
    if shutil.which("git") is None:
        raise SystemExit("opa_eval: git is required to extract the baseline library")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{BASELINE}^{{commit}}"],
                            capture_output=True, text=True, check=False)
    if commit.returncode != 0:
        raise SystemExit(f"opa_eval: commit {BASELINE} (the baseline library) is not in this clone's history; "
                         "a shallow clone needs `git fetch --unshallow`")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit.stdout.strip(), "policies"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "policies"


def request_body(containers: int) -> bytes:
    """The input the hook sends for the benchmark's worker pod with ``containers`` containers."""
    pod = worker_pod(containers)
    context = airflow_context(pod.metadata.labels, pod.metadata.annotations)  # type: ignore[attr-defined]
    return _json.dumps({"input": {"pod": pod_to_json(pod), "airflow": context,
                                  "request": {"uid": "bench", "version": "bench", "mode": "enforce"}}})


def _eval_us(pool: urllib3.HTTPConnectionPool, body: bytes) -> tuple[float, object]:
    response = pool.urlopen("POST", DECISION + "?metrics=true", body=body,
                            headers={"Content-Type": "application/json"})
    if response.status != 200:
        raise RuntimeError(f"OPA answered {response.status}: {response.data[:500]!r}")
    answer = _json.loads(response.data)
    return answer["metrics"]["timer_rego_query_eval_ns"] / 1e3, answer.get("result")


def compare(servers: dict[str, LocalOpa], body: bytes, calls: int) -> dict[str, dict[str, float]]:
    """Median and p90 eval µs per server, requests alternating between them after a warm-up."""
    pools = {name: urllib3.HTTPConnectionPool("127.0.0.1", opa.port, maxsize=1, retries=False,
                                              timeout=urllib3.Timeout(total=120))
             for name, opa in servers.items()}
    samples: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(max(2, calls // 10)):
        for pool in pools.values():
            _eval_us(pool, body)
    for _ in range(calls):
        for name, pool in pools.items():
            samples[name].append(_eval_us(pool, body)[0])
    for pool in pools.values():
        pool.close()
    return {name: {"median_us": statistics.median(values),
                   "p90_us": sorted(values)[int(0.9 * (len(values) - 1))], "calls": len(values)}
            for name, values in samples.items()}


def decision(opa: LocalOpa, body: bytes) -> dict[str, object]:
    """The library's whole decision for ``body``."""
    pool = urllib3.HTTPConnectionPool("127.0.0.1", opa.port, maxsize=1, retries=False,
                                      timeout=urllib3.Timeout(total=120))
    result = _eval_us(pool, body)[1]
    pool.close()
    assert isinstance(result, dict)
    return result


def decision_summary(opa: LocalOpa, body: bytes) -> dict[str, int]:
    """How big the decision is (operations, deny, warn): the same work must be measured on both sides."""
    result = decision(opa, body)
    return {key: len(value) if isinstance(value := result.get(key, []), list) else 0
            for key in ("patch", "deny", "warn")}


# The sizes Gatekeeper's engine runs at, beside the library alone.
GATEKEEPER_SIZES = (1, 5, 50, 200)


def compiled_module(policy_roots: list[Path], folder: Path) -> Path:
    """The library (and extra policies) compiled for the shipped configuration, as ``compile`` writes it;
    the roots are copied into one folder first (``compile`` takes one library)."""
    library = folder / "policies"
    for root in policy_roots:
        shutil.copytree(root, library / root.name if root.name != "policies" else library, dirs_exist_ok=True)
    module = folder / "compiled.generated.rego"
    module.write_text(compile_library(library, None, opa=opa_binary(None)).text)
    return module


def in_force(opa: LocalOpa) -> bool:
    """Whether the server's library is using its generated module (the compiled form's switch)."""
    pool = urllib3.HTTPConnectionPool("127.0.0.1", opa.port, maxsize=1, retries=False,
                                      timeout=urllib3.Timeout(total=120))
    answer = _json.loads(pool.urlopen("GET", "/v1/data/airflow/pod/lib/compiled/holds").data)
    pool.close()
    return answer.get("result") is True


def same_decisions(servers: dict[str, LocalOpa], body: bytes) -> None:
    """Every server answers ``body`` with the same decision bytes: the figures compare the same work."""
    answers = {}
    for name, opa in servers.items():
        pool = urllib3.HTTPConnectionPool("127.0.0.1", opa.port, maxsize=1, retries=False,
                                          timeout=urllib3.Timeout(total=120))
        answers[name] = pool.urlopen("POST", DECISION, body=body, headers={"Content-Type": "application/json"}).data
        pool.close()
    if len(set(answers.values())) != 1:
        raise SystemExit(f"opa_eval: the dynamic and compiled forms decide differently: {answers}")


def run(short: bool) -> dict[str, object]:
    rows: list[dict[str, object]] = []
    # The library's decisions on the pods Gatekeeper's engine gets: its result must be the same pod.
    decisions: dict[int, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "baseline").mkdir()
        baseline = baseline_library(root / "baseline")
        generated = root / "generated"
        generated.mkdir()
        generated_policies(generated, 200)
        sets = {"library": ([baseline], [REPO / "policies"]),
                "library+200-generated": ([baseline, generated], [REPO / "policies", generated])}
        for index, (policy_set, (then, now)) in enumerate(sets.items()):
            module = compiled_module(now, root / f"compiled-{index}")
            with LocalOpa(then) as old, LocalOpa(now) as new, LocalOpa([*now, module]) as compiled:
                forms = {"now": new, "compiled": compiled}
                if not in_force(compiled) or in_force(new):
                    raise SystemExit("opa_eval: the compiled form is not in force where measured (or is elsewhere)")
                for containers in (1, 5, 50):
                    body = request_body(containers)
                    same_decisions(forms, body)
                    calls = (10 if short else 300) if containers < 50 else (5 if short else 100)
                    figures = compare({"baseline": old, **forms}, body, calls)
                    rows.append(_row(policy_set, containers, figures, decision_summary(new, body),
                                     decision_summary(old, body)))
                    print(_line(rows[-1]), flush=True)
                    if policy_set == "library":
                        decisions[containers] = decision(new, body)
                # The shape: today's library alone (the baseline is slow there and not a target).
                for containers in ((200,) if short else (200, 1000)) if policy_set == "library" else ():
                    body = request_body(containers)
                    same_decisions(forms, body)
                    figures = compare(forms, body, 3 if short else (30 if containers <= 200 else 10))
                    rows.append(_row(policy_set, containers, figures, decision_summary(new, body), None))
                    print(_line(rows[-1]), flush=True)
                    if containers in GATEKEEPER_SIZES:
                        decisions[containers] = decision(new, body)
    # Same pods, same run: Gatekeeper's engine after OPA's rows (its own process, OPA idle meanwhile).
    gatekeeper = run_gatekeeper({n: request_body(n) for n in GATEKEEPER_SIZES}, decisions, short)
    check_gatekeeper(gatekeeper, GATEKEEPER_SIZES)
    library = {row["containers"]: row for row in rows if row["policy_set"] == "library"}
    for row in gatekeeper["rows"]:
        ours = library[row["containers"]]
        row["now_eval_median_us"] = ours["now_eval_median_us"]
        row["compiled_eval_median_us"] = ours["compiled_eval_median_us"]
        row["gatekeeper_over_now"] = row["gatekeeper_median_us"] / row["now_eval_median_us"]
        row["gatekeeper_over_compiled"] = row["gatekeeper_median_us"] / row["compiled_eval_median_us"]
        print(f"Gatekeeper/OPA eval {row['containers']:>4} containers: gatekeeper {row['gatekeeper_median_us']:8.0f} "
              f"us, now {row['now_eval_median_us']:8.0f} us, compiled {row['compiled_eval_median_us']:8.0f} us, "
              f"gatekeeper/compiled {row['gatekeeper_over_compiled']:.2f}", flush=True)
    return {"baseline_commit": BASELINE, "short": short, "rows": rows, "gatekeeper": gatekeeper}


def _row(policy_set: str, containers: int, figures: dict[str, dict[str, float]], now_size: dict[str, int],
         baseline_size: dict[str, int] | None) -> dict[str, object]:
    row: dict[str, object] = {"policy_set": policy_set, "containers": containers,
                              "now_eval_median_us": figures["now"]["median_us"],
                              "now_eval_p90_us": figures["now"]["p90_us"], "calls": figures["now"]["calls"],
                              "now_decision": now_size,
                              "compiled_eval_median_us": figures["compiled"]["median_us"],
                              "compiled_eval_p90_us": figures["compiled"]["p90_us"],
                              "compiled_speedup": figures["now"]["median_us"] / figures["compiled"]["median_us"]}
    if "baseline" in figures:
        row.update({"baseline_eval_median_us": figures["baseline"]["median_us"],
                    "baseline_eval_p90_us": figures["baseline"]["p90_us"],
                    "speedup": figures["baseline"]["median_us"] / figures["now"]["median_us"],
                    "compiled_vs_baseline": figures["baseline"]["median_us"] / figures["compiled"]["median_us"],
                    "baseline_decision": baseline_size})
    return row


def _line(row: dict[str, object]) -> str:
    text = (f"OPA eval {row['policy_set']:22} {row['containers']:>4} containers: "
            f"now {row['now_eval_median_us']:8.0f} us, compiled {row['compiled_eval_median_us']:8.0f} us")
    if "baseline_eval_median_us" in row:
        text += (f", baseline {row['baseline_eval_median_us']:8.0f} us, baseline/now {row['speedup']:.2f}"
                 f", baseline/compiled {row['compiled_vs_baseline']:.2f}")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--short", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args.short)
    result["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
