"""The golden files of tests/cli and how each is produced: the tests compare against them, and
``scripts/update-golden`` (``python -m tests.cli.golden``) rewrites them after an intended change."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from airflow_opa_mutation.cli import cli

HERE = Path(__file__).resolve().parent
LIBRARY = HERE / "library"
PODS = HERE / "pods"
GOLDEN = HERE / "golden"
PREVIEW_GOLDEN = GOLDEN / "preview.txt"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PORT = re.compile(r"127\.0\.0\.1:\d+")


def normalise(text: str) -> str:
    """Golden text: request uids and local OPA ports vary from run to run."""
    return _PORT.sub("127.0.0.1:<port>", _UUID.sub("<uuid>", text))


def preview_text() -> tuple[int, str]:
    """People's output of ``preview`` (colour off) for the test library's pods: exit code and text."""
    pods = [PODS / "preview.yaml", LIBRARY / "tag_warn" / "samples" / "01-latest.yaml.sample"]
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("AIRFLOW__OPA_MUTATION__")}
    env.update({"COLUMNS": "200", "NO_COLOR": None, "FORCE_COLOR": None})
    args = ["preview", "--policies", str(LIBRARY), "--color", "never", *map(str, pods)]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    text = normalise(result.stdout).replace(str(LIBRARY), "<library>").replace(str(PODS), "<pods>")
    return result.exit_code, text


def update() -> int:
    code, text = preview_text()
    if code != 1:  # one of the pods is denied
        print(f"preview exited {code}, not 1; golden file left as it is:\n{text}", file=sys.stderr)
        return 1
    changed = not PREVIEW_GOLDEN.exists() or PREVIEW_GOLDEN.read_text() != text
    PREVIEW_GOLDEN.write_text(text)
    print(f"{PREVIEW_GOLDEN.relative_to(HERE.parents[1])}: {'rewritten' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(update())
