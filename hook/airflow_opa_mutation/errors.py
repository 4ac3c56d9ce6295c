"""One exception hierarchy for everything the hook can refuse or fail at.

Every error names the pod (``namespace/name``) and the decision path it was evaluated against, so a
scheduler log line alone tells an operator which pod and which policy went wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._redact import redact_text


@dataclass(frozen=True)
class PodRef:
    """What an error message needs to name the pod: its identity and Airflow's ids for it."""

    namespace: str | None
    name: str | None
    airflow: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        pod = f"{self.namespace or '<no namespace>'}/{self.name or '<no name>'}"
        if not self.airflow:
            return f"pod {pod}"
        ids = ", ".join(f"{key}={value}" for key, value in self.airflow)
        return f"pod {pod} ({ids})"


class OpaMutationError(Exception):
    """Base of every error this package raises."""

    def __init__(self, message: str, *, pod: PodRef | None = None, decision_path: str | None = None) -> None:
        self.pod = pod
        self.decision_path = decision_path
        where = []
        if pod is not None:
            where.append(str(pod))
        if decision_path is not None:
            where.append(f"decision {decision_path}")
        self.reason = message
        super().__init__(f"{message} [{'; '.join(where)}]" if where else message)


class ConfigError(OpaMutationError):
    """A configuration value is missing or malformed; names the key and the offending value."""

    def __init__(self, key: str, value: object, problem: str) -> None:
        self.key = key
        self.value = value
        super().__init__(f"[opa_mutation] {key} = {value!r}: {problem}")


class OpaUnavailable(OpaMutationError):
    """OPA could not be asked: refused, timed out, answered with an HTTP error or a body that is not JSON."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        pod: PodRef | None = None,
        decision_path: str | None = None,
    ) -> None:
        self.status = status
        super().__init__(message, pod=pod, decision_path=decision_path)


class InvalidDecision(OpaMutationError):
    """OPA answered, but not with a decision the contract allows (undefined, wrong type, bad member)."""


@dataclass(frozen=True)
class Message:
    """A deny or warn message together with the policy that produced it (if the policy said)."""

    msg: str
    policy: str | None = None

    def __str__(self) -> str:
        return f"[{self.policy}] {self.msg}" if self.policy else self.msg


class PodDenied(OpaMutationError):
    """Policy refused the pod. Never bypassed by ``fail_mode``.

    Its message lists every deny message with its policy: on the KubernetesPodOperator path it is what the
    task try's log shows, to anyone who may read the task's logs, so what a message quotes of the pod's
    credentials is redacted (``_redact.redact_text``); ``messages`` keeps them as the policies wrote them.
    """

    def __init__(
        self, messages: Sequence[Message], *, pod: PodRef | None = None, decision_path: str | None = None
    ) -> None:
        self.messages = tuple(messages)
        listed = redact_text("; ".join(str(m) for m in self.messages))
        super().__init__(f"denied by policy: {listed}", pod=pod, decision_path=decision_path)


class PatchRejected(OpaMutationError):
    """The decision's patch cannot be applied safely; the pod was left exactly as it was."""

    def __init__(
        self,
        message: str,
        *,
        op_index: int | None = None,
        path: str | None = None,
        policy: str | None = None,
        pod: PodRef | None = None,
        decision_path: str | None = None,
    ) -> None:
        self.op_index = op_index
        self.path = path
        self.policy = policy
        parts = []
        if op_index is not None:
            parts.append(f"op #{op_index}")
        if path is not None:
            parts.append(f"path {path!r}")
        if policy is not None:
            parts.append(f"policy {policy!r}")
        prefix = f"patch rejected ({', '.join(parts)}): " if parts else "patch rejected: "
        super().__init__(prefix + message, pod=pod, decision_path=decision_path)


__all__ = [
    "ConfigError",
    "InvalidDecision",
    "Message",
    "OpaMutationError",
    "OpaUnavailable",
    "PatchRejected",
    "PodDenied",
    "PodRef",
]
