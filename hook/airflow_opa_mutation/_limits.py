"""Limits a pod must keep before OPA is asked: its size and its number of containers.

A pod is the DAG author's to write, and its size drives how long OPA evaluates it and how long its
answer is. A pod beyond Kubernetes' own request limit (``max_pod_bytes``, measured on the compact UTF-8
JSON the hook sends) or with more containers than any real task needs (``max_containers``: containers,
init and ephemeral ones together) is refused outright, in both fail modes, without costing OPA anything.
"""

from __future__ import annotations

from typing import Any

from .config import Settings
from .errors import Message, PodDenied, PodRef

#: The ``policy`` the messages of these denials carry.
LIMITS = "airflow-opa-mutation/limits"

_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def containers(doc: dict[str, Any]) -> int:
    """How many containers of any kind the pod document holds."""
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return 0
    return sum(len(items) for key in _CONTAINER_LISTS if isinstance(items := spec.get(key), list))


def check(doc: dict[str, Any], size: int, settings: Settings, *, pod: PodRef | None = None) -> None:
    """Raise :class:`PodDenied` naming the limit and the pod's value when ``doc`` is strictly above one."""
    problems = []
    if size > settings.max_pod_bytes:
        problems.append(f"the pod is {size} bytes of JSON, above max_pod_bytes = {settings.max_pod_bytes}")
    count = containers(doc)
    if count > settings.max_containers:
        problems.append(f"the pod has {count} containers, above max_containers = {settings.max_containers}")
    if problems:
        raise PodDenied([Message(p, LIMITS) for p in problems], pod=pod, decision_path=settings.decision_path)
