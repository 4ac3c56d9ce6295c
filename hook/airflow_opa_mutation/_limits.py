"""Limits a pod must keep before OPA is asked: its size, its number of containers and of volumes.

A pod is the DAG author's to write, and its size drives how long OPA evaluates it and how long its
answer is. A pod beyond Kubernetes' own request limit (``max_pod_bytes``, measured on the compact UTF-8
JSON the hook sends) or with more containers than any real task needs (``max_containers``: containers,
init and ephemeral ones together) or volumes (``max_volumes``: an image volume is an image to parse and
judge, and a patch operation for the mirror and pull-policy mutators; 20,000 of them fit in a megabyte and
cost OPA half a minute) is refused outright, in both fail modes, without costing OPA anything.
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


def volumes(doc: dict[str, Any]) -> int:
    """How many volumes the pod document holds."""
    spec = doc.get("spec")
    items = spec.get("volumes") if isinstance(spec, dict) else None
    return len(items) if isinstance(items, list) else 0


def check(doc: dict[str, Any], size: int, settings: Settings, *, pod: PodRef | None = None) -> None:
    """Raise :class:`PodDenied` naming the limit and the pod's value when ``doc`` is strictly above one."""
    problems = []
    if size > settings.max_pod_bytes:
        problems.append(f"the pod is {size} bytes of JSON, above max_pod_bytes = {settings.max_pod_bytes}")
    count = containers(doc)
    if count > settings.max_containers:
        problems.append(f"the pod has {count} containers, above max_containers = {settings.max_containers}")
    count = volumes(doc)
    if count > settings.max_volumes:
        problems.append(f"the pod has {count} volumes, above max_volumes = {settings.max_volumes}")
    if problems:
        raise PodDenied([Message(p, LIMITS) for p in problems], pod=pod, decision_path=settings.decision_path)
