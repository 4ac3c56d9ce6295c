"""The ``airflow.policy`` entry point: Airflow's plugin manager registers this module at start-up.

``pod_mutation_hook`` is the hook; ``task_policy`` is the opt-in parse-time check (``_parse_check``,
``[opa_mutation] parse_time_check``), which returns at once in every process that loaded no
KubernetesPodOperator.

Every Airflow process imports it (API server, dag processor, triggerer, CLI), so it imports nothing
heavy: the kubernetes client and the HTTP stack load at the first pod. pluggy (an Airflow dependency)
marks ``pod_mutation_hook`` as an implementation of Airflow's hook spec; without pluggy there is no
Airflow to call us, and the module stays importable.
"""

from __future__ import annotations

import sys
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


@hookimpl
def task_policy(task: Any) -> None:
    """With ``parse_time_check`` on, in the DAG processor: raise ``AirflowClusterPolicyViolation`` when the
    policies deny the pod of ``task`` (a KubernetesPodOperator). Runs for every task Airflow parses."""
    if "airflow.providers.cncf.kubernetes.operators.pod" not in sys.modules:
        return  # no KubernetesPodOperator here: nothing to check, nothing heavy imported
    from ._parse_check import check_task

    check_task(task)
