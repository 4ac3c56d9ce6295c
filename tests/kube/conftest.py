"""The control-plane fixtures live in tests/kube/fixtures.py, a plugin the root conftest loads, so that
tests/airflow shares the session's one control plane with tests/kube."""

from .fixtures import REPORT

__all__ = ["REPORT"]
