"""airflow-opa-mutation: policy-as-code pod mutation for Apache Airflow.

``pod_mutation_hook(pod)`` sends the pod to an Open Policy Agent, refuses it when policy denies it and
otherwise applies the returned RFC 6902 patch in place, atomically. See the README for the contract.

Airflow imports this package in every process at start-up (the ``airflow.policy`` entry point), most of
which never launch a pod; so the heavy parts (the kubernetes client, HTTP) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ConfigError,
    InvalidDecision,
    OpaMutationError,
    OpaUnavailable,
    PatchRejected,
    PodDenied,
)

if TYPE_CHECKING:
    from .config import Settings, load_settings
    from .hook import AUDIT_ANNOTATION, MutationHook, Outcome, configure, pod_mutation_hook

_LAZY = {
    "Settings": "config",
    "load_settings": "config",
    "AUDIT_ANNOTATION": "hook",
    "MutationHook": "hook",
    "Outcome": "hook",
    "configure": "hook",
    "pod_mutation_hook": "hook",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AUDIT_ANNOTATION",
    "ConfigError",
    "InvalidDecision",
    "MutationHook",
    "OpaMutationError",
    "OpaUnavailable",
    "Outcome",
    "PatchRejected",
    "PodDenied",
    "Settings",
    "__version__",
    "configure",
    "load_settings",
    "pod_mutation_hook",
]
