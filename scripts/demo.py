"""The demo: a real OPA serving policies/, sample Airflow pods through the real hook, a diff or a deny each.

Run it through scripts/demo (which installs OPA and the Python environment first):
    scripts/demo                      # the shipped policies with their shipped configuration
    scripts/demo --config my.yaml     # the same policies with your configuration delta (see policies/README.md)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import yaml

from airflow_opa_mutation import MutationHook, OpaMutationError, PodDenied, Settings, pod_from_json
from airflow_opa_mutation.cli._local_opa import LocalOpa

REPO = Path(__file__).resolve().parents[1]
PODS = REPO / "scripts" / "demo-pods"
COLOR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def colored_diff(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            lines.append(paint(line, "32"))
        elif line.startswith("-") and not line.startswith("---"):
            lines.append(paint(line, "31"))
        elif line.startswith("@@"):
            lines.append(paint(line, "36"))
        else:
            lines.append(line)
    return "\n".join(lines)


def config_data(config: Path | None, scratch: Path) -> list[Path]:
    """Extra OPA data for ``--config``: the file as OPA loads it (``airflow: pod: config: ...``), or just its
    ``policies:``/``exempt:`` part, which is then put under ``airflow.pod.config``."""
    if config is None:
        return []
    document = yaml.safe_load(config.read_text()) or {}
    if "airflow" not in document:
        document = {"airflow": {"pod": {"config": document}}}
    data = scratch / "config.json"
    data.write_text(json.dumps(document))
    return [data]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="a policy configuration delta (policies/README.md, Configuration)")
    parser.add_argument("pods", nargs="*", type=Path, help="pod sample files (default: scripts/demo-pods/*.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="    %(levelname)s %(message)s")

    files = args.pods or sorted(PODS.glob("*.yaml"))
    scratch = Path(tempfile.mkdtemp(prefix="demo-"))
    with LocalOpa([REPO / "policies", *config_data(args.config, scratch)]) as opa:
        where = f" with configuration {args.config}" if args.config else " with the shipped configuration"
        print(paint(f"OPA {opa.url} serving policies/{where}", "1"))
        hook = MutationHook(Settings(url=opa.url), trust_pod_ids=True)  # standing in for the scheduler
        outcomes = {"mutated": 0, "unchanged": 0, "denied": 0}
        for path in files:
            sample = yaml.safe_load(path.read_text())
            pod = pod_from_json(sample["pod"])
            print()
            print(paint(f"■ {path.name}: {sample.get('description', '')}", "1;34"))
            preview = hook.evaluate(pod)
            try:
                hook(pod)  # the real thing: mutates ``pod`` in place or raises
            except PodDenied as denied:
                outcomes["denied"] += 1
                print(paint("  DENIED", "1;31"))
                for message in denied.messages:
                    print(f"    [{message.policy}] {message.msg}")
                continue
            except OpaMutationError as error:
                print(paint(f"  ERROR {type(error).__name__}: {error}", "1;31"))
                return 1
            if preview.changed:
                outcomes["mutated"] += 1
                ops = preview.decision.patch if preview.decision else ()
                print(paint(f"  MUTATED by {', '.join(preview.decision.policies) if preview.decision else ''}"
                            f" ({len(ops)} ops)", "1;32"))
                print(colored_diff(preview.diff()))
            else:
                outcomes["unchanged"] += 1
                print(paint("  ALLOWED unchanged", "1;32"))
        hook.close()
    print()
    print(paint(", ".join(f"{count} {what}" for what, count in outcomes.items()), "1"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
