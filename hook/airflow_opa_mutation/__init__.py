"""airflow-opa-mutation: policy-as-code pod mutation for Apache Airflow.

``pod_mutation_hook(pod)`` sends the pod to an Open Policy Agent, refuses it when policy denies it and
otherwise applies the returned RFC 6902 patch in place, atomically. See the README for the contract.

Everything public is importable from here; the modules behind it (``_pod_codec``, ``_patch_engine``,
``_opa_client``, ...) are private and may change in any release. ``hook`` and ``plugin`` stay importable
as modules: Airflow's entry point names ``airflow_opa_mutation.plugin``.

Airflow imports this package in every process at start-up (the ``airflow.policy`` entry point), most of
which never launch a pod; so the heavy parts (the kubernetes client, HTTP) load on first use: the names
in ``_LAZY`` are imported when first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._audit import AUDIT_ANNOTATION
from ._version import __version__
from .decision import Decision, PatchOp
from .errors import (
    ConfigError,
    InvalidDecision,
    Message,
    OpaMutationError,
    OpaUnavailable,
    PatchRejected,
    PodDenied,
    PodRef,
)

if TYPE_CHECKING:
    from ._pod_codec import pod_from_json, pod_to_json
    from .config import Settings, load_settings
    from .hook import MutationHook, Outcome, configure, pod_mutation_hook

#: Public name -> the module defining it, imported at first use.
_LAZY = {
    "Settings": "config",
    "load_settings": "config",
    "MutationHook": "hook",
    "Outcome": "hook",
    "configure": "hook",
    "pod_mutation_hook": "hook",
    "pod_from_json": "_pod_codec",
    "pod_to_json": "_pod_codec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AUDIT_ANNOTATION",
    "ConfigError",
    "Decision",
    "InvalidDecision",
    "Message",
    "MutationHook",
    "OpaMutationError",
    "OpaUnavailable",
    "Outcome",
    "PatchOp",
    "PatchRejected",
    "PodDenied",
    "PodRef",
    "Settings",
    "__version__",
    "configure",
    "load_settings",
    "pod_from_json",
    "pod_mutation_hook",
    "pod_to_json",
]
