"""airflow-opa-mutation: policy-as-code pod mutation for Apache Airflow.

``pod_mutation_hook(pod)`` sends the pod to an Open Policy Agent, refuses it when policy denies it and
otherwise applies the returned RFC 6902 patch in place, atomically. See the README for the contract.
"""

from ._version import __version__
from .config import Settings, load_settings
from .errors import (
    ConfigError,
    InvalidDecision,
    OpaMutationError,
    OpaUnavailable,
    PatchRejected,
    PodDenied,
)
from .hook import AUDIT_ANNOTATION, MutationHook, Outcome, configure, pod_mutation_hook

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
