"""Kubernetes' own verdicts for differential tests, from the project's tools/k8s-oracle binary.

The binary wraps k8s.io/pod-security-admission and github.com/distribution/reference (built by
scripts/install-tools). One process answers a whole batch over JSON Lines, so a test can compare thousands
of cases against Kubernetes for one process start. A missing binary is an error, never a skip: a
differential test that silently does not run proves nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class OracleMissing(RuntimeError):
    """The k8s-oracle binary is not there: run scripts/install-tools (scripts/test does)."""


class K8sOracle:
    """Runs ``k8s-oracle`` once per batch: one JSON line in, one JSON line out, same order."""

    def __init__(self, binary: str | os.PathLike[str] | None = None, *, timeout: float = 300.0) -> None:
        path = Path(binary or os.environ.get("AOM_K8S_ORACLE_BIN") or REPO / ".tools/bin/k8s-oracle")
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise OracleMissing(f"no k8s-oracle binary at {path}: run scripts/install-tools or set AOM_K8S_ORACLE_BIN")
        self.binary = path
        self.timeout = timeout

    def _batch(self, args: list[str], items: list[Any]) -> list[dict[str, Any]]:
        if not items:
            return []
        # json.dumps never writes a raw newline (strings escape theirs), so each item is exactly one line.
        lines = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
        done = subprocess.run(
            [str(self.binary), *args], input=lines, capture_output=True, text=True, timeout=self.timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"k8s-oracle {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        answers = [json.loads(line) for line in done.stdout.splitlines()]
        if len(answers) != len(items):
            raise RuntimeError(f"k8s-oracle answered {len(answers)} lines for {len(items)} inputs")
        return answers

    def pod_security(self, pods: list[dict[str, Any]], version: str = "latest") -> list[dict[str, Any]]:
        """Per pod: ``{"baseline": {"allowed", "forbidden": [{"reason", "detail"}]}, "restricted": ...}``
        (plus ``warnings`` for fields the API server would drop), or ``{"error": ...}`` if it does not decode.
        """
        return self._batch(["podsecurity", "--version", version], pods)

    def parse_images(self, refs: list[str]) -> list[dict[str, Any]]:
        """Per reference, what ``reference.ParseNormalizedNamed`` says: ``{"valid": True, "domain", "path",
        "tag", "digest", "normalized", "familiar", "withDefaultTag"}`` or ``{"valid": False, "error"}``.
        """
        return self._batch(["imageref"], refs)

    def version(self) -> dict[str, str]:
        """The pinned module versions and the policy version that "latest" evaluates as."""
        done = subprocess.run([str(self.binary), "version"], capture_output=True, text=True, check=True)
        result: dict[str, str] = json.loads(done.stdout)
        return result


def pod_security(pods: list[dict[str, Any]], version: str = "latest") -> list[dict[str, Any]]:
    """:meth:`K8sOracle.pod_security` with the default binary."""
    return K8sOracle().pod_security(pods, version)


def parse_images(refs: list[str]) -> list[dict[str, Any]]:
    """:meth:`K8sOracle.parse_images` with the default binary."""
    return K8sOracle().parse_images(refs)
