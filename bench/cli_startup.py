"""How long the command line takes to start: ``airflow-opa-mutation --version`` and ``--help``.

Target: under 0.3 s (2.3 s when every command module was imported up front; they load lazily now, see
``airflow_opa_mutation/cli/__init__.py``). Wall and CPU time of fresh processes, median of ``--runs``.

    python bench/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

TARGET_S = 0.3


def measure(args: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of ``python -m airflow_opa_mutation.cli ARGS``."""
    walls, cpus = [], []
    for _ in range(runs):
        before = os.times()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "airflow_opa_mutation.cli", *args], check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = os.times()
        cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    print("| command | wall median s | CPU median s | target s |")
    print("|---|---|---|---|")
    for args in (["--version"], ["--help"]):
        wall, cpu = measure(args, runs)
        print(f"| airflow-opa-mutation {' '.join(args)} | {wall:.3f} | {cpu:.3f} | < {TARGET_S} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
