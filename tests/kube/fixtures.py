"""The session's real Kubernetes control plane (tests/kube/cluster.py) and namespaces in it: a pytest
plugin (``pytest_plugins`` in tests/conftest.py), so tests/kube and tests/airflow share one control plane.

One etcd + kube-apiserver per pytest session, started on first use and stopped at the end; when a test
failed, its folder (logs, kubeconfig, certificates) is kept and named in the summary. Missing binaries
are an error, never a skip: scripts/install-tools builds them.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .cluster import ControlPlane

# What the terminal summary reports: start-up time, kept folder, the admission agreement's pods
# ((case, configured level, namespace level, outcome) each), the generated pods' dry runs, Airflow's pods.
REPORT: dict[str, Any] = {"admission": [], "dry_run": []}
_names = itertools.count(1)


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    plane = ControlPlane().start()
    REPORT["start_seconds"] = plane.start_seconds
    REPORT["workdir"] = plane.workdir
    yield plane
    failed = request.session.testsfailed > 0
    REPORT["kept"] = failed
    plane.stop(keep=failed)


@pytest.fixture
def kube_namespace(kube_cluster: ControlPlane) -> Callable[..., str]:
    """Create a fresh namespace: ``kube_namespace("restricted")`` enforces that Pod Security level."""

    def make(enforce: str | None = None, *, warn: str | None = None, prefix: str = "t") -> str:
        name = f"{prefix}-{enforce or 'none'}-{next(_names)}"
        kube_cluster.namespace(name, enforce=enforce, warn=warn)
        return name

    return make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "start_seconds" not in REPORT:
        return
    write = terminalreporter.write_line
    terminalreporter.section("kube-apiserver control plane (tests/kube)")
    write(f"etcd + kube-apiserver ready in {REPORT['start_seconds']:.1f} s")
    if REPORT.get("kept"):
        write(f"a test failed: logs, kubeconfig and certificates kept in {REPORT['workdir']}")
    for line in REPORT.get("airflow", []):  # tests/airflow/test_kube_e2e.py
        write(line)
    if REPORT["admission"]:
        outcomes = collections.Counter((level, outcome) for _, level, _, outcome in REPORT["admission"])
        for level in ("baseline", "restricted"):
            counts = ", ".join(f"{n} {outcome}" for (lv, outcome), n in sorted(outcomes.items()) if lv == level)
            configured = "shipped configuration" if level == "baseline" else "enforce: restricted"
            write(f"samples and demo pods, {configured}: {counts}")
    for line in REPORT["dry_run"]:
        write(line)
    if REPORT.get("webhook"):  # tests/kube/test_webhook.py: (policy, sample, empties, outcome) each
        outcomes = collections.Counter(outcome for *_, outcome in REPORT["webhook"])
        write("samples through hook and webhook: " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())))
