"""Which Airflow task a pod belongs to, read from the labels and annotations Airflow sets before the hook.

The KubernetesExecutor writes the ids twice: as labels (sanitized to fit Kubernetes label rules) and as
annotations (verbatim). The KubernetesPodOperator writes labels only. Annotations win where both exist,
because policies match ``dag_id``/``task_id`` globs against the real ids, not their sanitized form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LAUNCHER_EXECUTOR = "kubernetes_executor"
LAUNCHER_KPO = "kubernetes_pod_operator"
LAUNCHER_UNKNOWN = "unknown"

_TEXT_IDS = ("dag_id", "task_id", "run_id")
_INT_IDS = ("try_number", "map_index")


def _as_int(value: str) -> int | None:
    try:
        return int(value.strip())
    except (AttributeError, ValueError):
        return None


def airflow_context(labels: Mapping[str, Any], annotations: Mapping[str, Any]) -> dict[str, Any]:
    """``input.airflow``: the ids Airflow set (each absent when unknown) and the launcher."""
    context: dict[str, Any] = {}
    for key in _TEXT_IDS:
        for source in (annotations, labels):
            value = source.get(key)
            if isinstance(value, str) and value:
                context[key] = value
                break
    for key in _INT_IDS:
        for source in (annotations, labels):
            raw = source.get(key)
            number = _as_int(raw) if isinstance(raw, str) else None
            if number is not None:
                context[key] = number
                break
    if str(labels.get("kubernetes_executor", "")).lower() == "true":
        context["launcher"] = LAUNCHER_EXECUTOR
    elif str(labels.get("kubernetes_pod_operator", "")).lower() == "true":
        context["launcher"] = LAUNCHER_KPO
    else:
        context["launcher"] = LAUNCHER_UNKNOWN
    return context


def describe(context: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The ids worth naming in an error or log line, in a stable order."""
    return tuple((key, str(context[key])) for key in (*_TEXT_IDS, *_INT_IDS) if key in context)
