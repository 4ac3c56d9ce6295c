"""The ``airflow.policy`` entry point: Airflow's plugin manager registers this module at start-up.

Every Airflow process imports it (API server, dag processor, triggerer, CLI), so it imports nothing
heavy: the kubernetes client and the HTTP stack load at the first pod. pluggy (an Airflow dependency)
marks ``pod_mutation_hook`` as an implementation of Airflow's hook spec; without pluggy there is no
Airflow to call us, and the module stays importable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

hookimpl: Callable[[Callable[..., Any]], Callable[..., Any]]
try:
    from pluggy import HookimplMarker

    hookimpl = HookimplMarker("airflow.policy")
except ImportError:  # pragma: no cover - Airflow (and so pluggy) is not installed

    def hookimpl(function: Callable[..., Any]) -> Callable[..., Any]:
        return function


@hookimpl
def pod_mutation_hook(pod: Any) -> None:
    """Evaluate ``pod`` against OPA and mutate it in place, or raise (see the README's contract)."""
    from .hook import default_hook

    default_hook()(pod)
